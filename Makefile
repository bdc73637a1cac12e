# The two commands of the README. Both bootstrap .venv on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test exec lock clean

run: $(STAMP)
	$(VENV)/bin/python -m cloud.devstack run

test: $(STAMP)
	$(VENV)/bin/python -m cloud.devstack test -- $(ARGS)

# Any command with the stack's environment, e.g. `make exec CMD="python manage.py createsuperuser"`.
exec: $(STAMP)
	$(VENV)/bin/python -m cloud.devstack exec -- $(CMD)

# Exact versions, checked against their hashes, from requirements-dev.lock (the runtime's
# requirements.lock plus the test tools); then the project itself without resolving anything.
$(STAMP): pyproject.toml requirements-dev.lock cli/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Refract needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(VENV)/bin/python -m pip install --quiet --no-deps -e ./cli
	touch $(STAMP)

# Re-resolve the locks from pyproject.toml's ranges (every platform, Python 3.11+).
# `make lock ARGS="--upgrade-package django"` moves one package; `ARGS=--upgrade` moves all.
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --universal --generate-hashes \
	--python-version 3.11 --quiet
lock: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet 'uv>=0.5'
	$(LOCK) -o requirements.lock $(ARGS)
	$(LOCK) --extra dev -c requirements.lock -o requirements-dev.lock $(ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .ruff_cache

# The dev runtime's management API secret (made once, kept in .data/), for the Prisma CLI:
#   export PRISMA_MANAGEMENT_API_SECRET=$(make -s management-secret)
.PHONY: management-secret
management-secret: $(STAMP)
	@$(VENV)/bin/python -m cloud.devstack management-secret
