"""The ingest benchmark (``python -m benchmarks.bench_ingest``), one concept a module:

- ``ceilings``: what HTTP and Kafka allow without the other (an instant producer, a bare
  producer loop);
- ``targets``: the servers under load, each a process of its own;
- ``load``: the load client, its windows in turns, and one-at-a-time latency;
- ``report``: the results as markdown.

(Inside, ``ingest`` is the service's package, as everywhere: imports are absolute.)
"""
