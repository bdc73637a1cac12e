# The two commands of the README. Both bootstrap .venv on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test exec clean

run: $(STAMP)
	$(VENV)/bin/python -m cloud.devstack run

test: $(STAMP)
	$(VENV)/bin/python -m cloud.devstack test $(ARGS)

# Any command with the stack's environment, e.g. `make exec CMD="python manage.py createsuperuser"`.
exec: $(STAMP)
	$(VENV)/bin/python -m cloud.devstack exec -- $(CMD)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Refract needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .data .pytest_cache .ruff_cache
