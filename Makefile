# wireway: two commands on a fresh machine — `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all test-faults lint bench clean

# Debian's bare python3 has no venv module: install it when we may (root with apt-get).
$(BIN)/python:
	@$(PY) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PY) -m venv $(VENV); \
	  else echo "python3 cannot create a venv: install python3-venv (apt-get install python3-venv)"; exit 1; fi; }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/wireway run --simulate 20

test: $(STAMP)
	$(BIN)/pytest -m "not slow and not faults" -q

test-all: $(STAMP)
	$(BIN)/pytest -q

# fault injection against real servers (minutes), then the quick fault tests `make test`
# also runs; each leaves its row in .faults/ and the table is printed even after a failure
# (a module that fails to import still fails the run, but stops no fault test)
test-faults: $(STAMP)
	@s=0; $(BIN)/pytest -m faults -q --continue-on-collection-errors || s=1; \
	$(BIN)/pytest -m "not faults" -q tests/faults || s=1; \
	$(BIN)/python benchmarks/faults_table.py; exit $$s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

bench: $(STAMP)
	$(BIN)/wireway bench

clean:
	rm -rf $(VENV) data .pytest_cache
