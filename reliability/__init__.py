"""Fault scenarios against a 3-node Kafka cluster (issue 12): real ingest and dispatcher
processes, a steady load of per-user numbered events, a loopback sink recording every delivery,
and a check that nothing ingest acknowledged with 202 was lost, duplicated silently out of
order, or delivered out of per-user order. ``python -m reliability`` (``just reliability``)
runs the scenarios and writes ``docs/reliability.md``.

Modules, one concept each: ``check`` (the verdict, pure), ``load`` (the clients and their
record of 202s), ``sink`` (the destinations' loopback receiver), ``system`` (the processes and
topics of one run), ``faults`` (what each scenario does to them), ``scenarios`` (the list and
the run of one), ``report`` (the table).
"""
