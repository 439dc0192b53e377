# Event delivery on Kafka. Run recipes through ./just on a fresh machine (it installs `just`).

set shell := ["bash", "-euo", "pipefail", "-c"]
set dotenv-load := false

python := ".venv/bin/python"

# List the recipes.
default:
    @just --list

# --- the system ---------------------------------------------------------------------------

# (Docker compose if an engine answers, else honcho with the Procfile; `up --native` forces
# that. A broker already running from kafka-up is used, not started again.)
#
# Kafka, ingest on :8080 and dispatcher shards a and b in the foreground; Ctrl-C stops all.
[no-exit-message]
up *args:
    @exec {{python}} -m localkafka stack {{args}}

# Stop what runs in the background: a broker from kafka-up, or the compose stack (data kept).
down:
    {{python}} -m localkafka down --stack

# (The native state dirs $XDG_STATE_HOME/event-delivery/kafka and .../kafka-cluster, default
# under ~/.local/state, or the compose volume kafka-data; the cached jars in
# ~/.cache/event-delivery stay.)
#
# down, then delete Kafka's data and log, the cluster's too (what it removes is printed).
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

# --- cluster ------------------------------------------------------------------------------

# Start the nodes of a 3-node KRaft cluster (127.0.0.1:19092-19094) that are not running.
cluster-up:
    {{python}} -m localkafka cluster up

# One line per cluster node (pid, port, answers) and the bootstrap list.
cluster-status:
    {{python}} -m localkafka cluster status

# Stop the cluster's nodes (data kept; `clean` removes it).
cluster-down:
    {{python}} -m localkafka cluster down

# Fault scenarios on the cluster under load (lost must be 0); writes docs/reliability.md (~10 min).
reliability *args:
    {{python}} -m reliability {{args}}

# 30 min of load, a flapping destination, a broker restart every 5 min; docs/soak.png (not in CI).
soak *args:
    {{python}} -m reliability.soak {{args}}

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

# --- benchmarks ---------------------------------------------------------------------------

# Ingest's PUT /events throughput and latency beside the HTTP and Kafka ceilings, 1 vs 2 workers, tracing on vs off (~2 min).
bench-ingest *args: kafka-up
    {{python}} -m benchmarks.bench_ingest {{args}}

# Dispatcher vs a compiled sink (Go): concurrency 1-256 beside bare aiohttp, --processes 1 vs 2, 950 destinations (the most one process runs), tracing, profile (~15 min).
bench-dispatch *args: kafka-up
    {{python}} -m benchmarks.bench_dispatch {{args}}

# Every benchmark, one after another; their tables go to benchmarks/results/.
bench: bench-ingest bench-dispatch
