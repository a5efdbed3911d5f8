# featql — the two Quickstart commands are `make demo` and `make test`; both create .venv and
# install what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test test-fast lint golden bench install install-dev java dynalite maven kafka clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[serve]'
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -e '.[serve,dynamodb,spark,stream,dev]'
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev java dynalite kafka

# dynalite: a DynamoDB wire-protocol server (Node) the online-store tests and bench run against.
DYNALITE_VERSION := 4.0.0
DYNALITE := .cache/dynalite/node_modules/.bin/dynalite
dynalite: $(DYNALITE)
$(DYNALITE):
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Node.js and npm for dynalite"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	npm install --prefix .cache/dynalite dynalite@$(DYNALITE_VERSION) --no-audit --no-fund

# Spark needs a Java runtime (17+); install one from the distribution when it is missing.
java:
	@java -version >/dev/null 2>&1 || { \
	  echo "installing a Java runtime for Spark"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }

# Kafka for the stream tests and `featql stream`: Spark's Kafka connector for the pinned pyspark
# (jvm/spark-kafka/pom.xml), Spark's Avro functions for `format = avro` streams
# (jvm/spark-avro/pom.xml) and a KRaft broker (jvm/kafka/pom.xml), fetched through Maven into
# .cache/jars/<name>/; a stamp per folder makes it run once per pom. `make demo` needs none of it.
MVN := mvn -B -q -Dstyle.color=never
kafka: .cache/jars/spark-kafka/.stamp .cache/jars/spark-avro/.stamp .cache/jars/kafka/.stamp
maven: java
	@command -v mvn >/dev/null 2>&1 || { \
	  echo "installing Maven for the Kafka jars"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; }
.cache/jars/%/.stamp: jvm/%/pom.xml | maven
	@echo "fetching the $* jars through Maven into .cache/jars/$*/"
	@rm -rf .cache/jars/$* && mkdir -p .cache/jars
	@$(MVN) -f $< dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(CURDIR)/.cache/jars/$* >.cache/jars/mvn-$*.log 2>&1 \
	  || { cat .cache/jars/mvn-$*.log; exit 1; }
	@touch $@

demo: install
	$(VENV)/bin/featql demo --project features

test: install-dev
	$(VENV)/bin/pytest -q

test-fast: install-dev
	$(VENV)/bin/pytest -q -m "not slow"

lint: install-dev
	$(VENV)/bin/ruff check featql tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

golden: install-dev
	$(VENV)/bin/pytest -q tests/test_golden.py --snapshot-update

bench: install-dev
	$(PY) bench/compile_bench.py

clean:
	rm -rf $(VENV) target features/target features/data .pytest_cache .mypy_cache .ruff_cache
