# One image for every Refract process: web, worker, beat and runtime differ only by command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md requirements.lock ./
COPY cloud cloud
COPY accounts accounts
COPY servers servers
COPY compat compat
COPY runtime runtime
COPY templates templates
# static/vendor/graphiql is also the runtime's playground (runtime/playground.py finds it beside
# runtime/ in /app, where `python -m runtime` imports the package from).
COPY static static
COPY manage.py ./
RUN pip install --require-hashes -r requirements.lock \
    && pip install --no-deps . \
    && useradd --system --home /app refract \
    && DEBUG=false SECRET_KEY=collectstatic-only-not-a-real-secret-key-0123456789abcdef \
       ALLOWED_HOSTS=build DATABASE_URL=postgres://build@localhost/build \
       REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --no-input

USER refract
EXPOSE 3000 4466
# Threads: a Prisma CLI login holds a poll open for a few seconds (see accounts/cli_login.py).
CMD ["gunicorn", "cloud.wsgi", "--bind", "0.0.0.0:3000", "--workers", "3", "--threads", "16", "--access-logfile", "-"]
