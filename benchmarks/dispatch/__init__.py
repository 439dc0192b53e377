"""The dispatch benchmark (``python -m benchmarks.bench_dispatch``), one concept a module:

- ``plan``: what is measured, full or ``--quick``;
- ``sink``, ``bare_client``: the helper processes (the destination, compiled from
  ``benchmarks/sink`` when Go is installed; the ceiling client);
- ``supervised``: several dispatcher processes under ``dispatcher.supervisor``;
- ``events``: the events pre-loaded into Kafka;
- ``harness``: the sink, topics, manifests and processes of one benchmark run;
- ``runs``: watching one run and what it used; ``bounds``: what bounded it;
- ``scaling``, ``many``, ``tracing_cost``, ``profile``: the scenarios beyond one
  destination's runs (processes 1 vs 2, many destinations, tracing off vs on, the profile);
- ``report``: the results as markdown.
"""
