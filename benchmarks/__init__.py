"""Benchmarks: each ``bench_*.py`` runs as ``python -m benchmarks.bench_<name>`` (or a ``just
bench-<name>`` recipe) and writes its table to ``benchmarks/results/<name>.md``.

``dispatch/`` and ``ingest/`` hold each benchmark's own parts, ``sink/`` the dispatch
benchmark's compiled sink (Go source, built at run time). What the benchmarks share is here, a
module each: ``measure`` (a process's CPU, RSS and threads), ``processes`` (starting and
stopping them), ``loopback`` (helper processes serving on loopback), ``span_counter`` and
``tracing`` (tracing on versus off), ``kafka`` (scratch topics), ``report`` (machine facts,
tables) and ``options`` (the shared command-line options).
"""
