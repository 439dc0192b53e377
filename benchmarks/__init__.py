"""Benchmarks: each ``bench_*.py`` runs as ``python -m benchmarks.bench_<name>`` (or a ``just
bench-<name>`` recipe) and writes its table to ``benchmarks/results/<name>.md``."""
