"""The dispatch benchmark (``python -m benchmarks.bench_dispatch``), one concept a module:

- ``plan``: what is measured, full or ``--quick``;
- ``sink``, ``bare_client``: the helper processes (the destination, the ceiling client);
- ``events``: the events pre-loaded into Kafka;
- ``harness``: the sink, topics, manifests and processes of one benchmark run;
- ``runs``: watching one run and what it used;
- ``many``, ``tracing_cost``, ``profile``: the scenarios beyond one destination's runs;
- ``report``: the results as markdown.
"""
