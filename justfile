# Event delivery on Kafka. Run recipes through ./just on a fresh machine (it installs `just`).

set shell := ["bash", "-euo", "pipefail", "-c"]
set dotenv-load := false

python := ".venv/bin/python"

# List the recipes.
default:
    @just --list

# --- the system ---------------------------------------------------------------------------

# Kafka, ingest on :8080 and dispatcher shards a and b in the foreground; Ctrl-C stops all.
up:
    {{python}} -m localkafka up

# Stop a background Kafka started by kafka-up (data kept).
down: kafka-down

# Stop Kafka and delete its local data and log (the cached jars stay).
clean:
    {{python}} -m localkafka clean

# --- kafka --------------------------------------------------------------------------------

# Start a single-node KRaft Kafka on 127.0.0.1:9092 in the background (Docker if it answers).
kafka-up:
    {{python}} -m localkafka up

# Stop the broker kafka-up started.
kafka-down:
    {{python}} -m localkafka down

# Say whether the broker runs and answers.
kafka-status:
    {{python}} -m localkafka status

# --- quality ------------------------------------------------------------------------------

# Run the test suite against a real broker (KAFKA_BOOTSTRAP_SERVERS, Docker, or a native one).
test *args:
    {{python}} -m pytest {{args}}

# ruff (lint and format check) and mypy --strict.
lint:
    {{python}} -m ruff check .
    {{python}} -m ruff format --check .
    {{python}} -m mypy

# Format the code.
fmt:
    {{python}} -m ruff format .
    {{python}} -m ruff check --fix .
