# The two commands of the README's quick start, and the pieces they are made of.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := data
PORT ?= 5000

.PHONY: demo test install install-test browser docs lint fmt clean

# 1. install, make the sample Salesforce export and the GLEIF records of its companies, ingest them,
#    link accounts to legal entities (okg match), serve http://127.0.0.1:5000/
demo: install
	$(BIN)/okg sample --out $(DATA)/sample-salesforce
	$(BIN)/okg ingest $(DATA)/sample-salesforce --store $(DATA)/store --report $(DATA)/ingest-report.json
	$(BIN)/okg sample --system gleif --out $(DATA)/sample-gleif
	$(BIN)/okg ingest $(DATA)/sample-gleif --store $(DATA)/store --quarantine $(DATA)/store-quarantine-gleif.csv
	$(BIN)/okg match --store $(DATA)/store --review $(DATA)/match-review.csv
	$(BIN)/okg serve --store $(DATA)/store --port $(PORT)

# 2. install with the test extras and run the whole test suite
test: install-test browser
	$(BIN)/python -m pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setuptools 77 or later reads the licence as an SPDX expression (pyproject.toml); the wheel test
# builds with this environment's setuptools
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet 'setuptools>=77' -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet 'setuptools>=77' -e '.[test]'

# the page tests drive Debian's chromium with playwright (playwright cannot download browsers here)
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the page tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: could not install chromium; the page tests will be skipped"

# the ontology's HTML documentation and RDF downloads, in docs/ontology/
docs: install
	$(BIN)/okg docs --out docs/ontology

# check the model files (style shapes, SHACL-SHACL, canonical Turtle); put Turtle in canonical form
lint: install
	$(BIN)/okg lint

fmt: install
	$(BIN)/okg fmt

clean:
	rm -rf $(DATA) $(VENV)
