# tailor: two commands for users — `make demo` and `make test` — each sets everything up first.
SHELL := /bin/bash
TAILOR_VENV ?= .venv
PY := $(TAILOR_VENV)/bin/python
STAMP := $(TAILOR_VENV)/.tailor-installed
SERVER_DIR := graphdb/server/java
SERVER_JAR := $(SERVER_DIR)/target/tailor-neo4j-server.jar
SERVER_SRC := $(shell find $(SERVER_DIR)/src -name '*.java' 2>/dev/null) $(SERVER_DIR)/pom.xml
# The browser tests (tests/web) drive Debian's Chromium; Playwright's own browser download is not used.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test lint bench clean-server

setup: $(STAMP) $(SERVER_JAR) $(CHROMIUM)

# Reinstalls only when the pinned set or the package metadata changed; a second run takes seconds.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || python3.11 -m venv $(TAILOR_VENV) || python3 -m venv $(TAILOR_VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(SERVER_JAR): $(SERVER_SRC)
	@command -v java >/dev/null || { echo "Java 17+ is needed for the local Neo4j: install OpenJDK 17"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed to build the local Neo4j: install maven"; exit 1; }
	mvn -q -B -f $(SERVER_DIR)/pom.xml package -DskipTests
	@touch $(SERVER_JAR)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the browser tests need Chromium at $(CHROMIUM) (Debian: apt-get install chromium chromium-driver)"; exit 1; }
	$(SUDO) apt-get update -q
	$(SUDO) apt-get install -y -q chromium chromium-driver

demo: setup
	$(TAILOR_VENV)/bin/tailor demo

test: setup lint
	$(PY) -m pytest -q

lint: setup
	$(TAILOR_VENV)/bin/ruff check .

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean-server:
	rm -rf $(SERVER_DIR)/target
