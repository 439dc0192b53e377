# syntax=docker/dockerfile:1
# One image for ingest and the dispatchers: the command picks the console script, e.g.
#   docker run event-delivery ingest --host 0.0.0.0 --port 8080 --bootstrap-servers kafka:19092
#   docker run event-delivery dispatcher --manifest manifests/shard-a.yaml
# docker-compose.yaml runs both.

# --- build: the project's wheel and the wheels of everything it depends on -----------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# pyproject names README.md as the package's readme; only the packages themselves follow.
COPY pyproject.toml README.md ./
COPY eventlog/ eventlog/
COPY ingest/ ingest/
COPY dispatcher/ dispatcher/
COPY localkafka/ localkafka/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: the wheels installed (no dev dependencies, no build tools), run as non-root ---
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels event-delivery
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY manifests/ manifests/
USER app
EXPOSE 8080
CMD ["ingest", "--host", "0.0.0.0", "--port", "8080"]
