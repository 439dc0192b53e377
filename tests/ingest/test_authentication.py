"""Authenticated ingest under a real server and broker: who may write, how often, and proof
from the topic that refused requests wrote nothing."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventlog.record import decode
from ingest import IngestSettings
from ingest.api_keys import key_line
from tests.ingest.conftest import end_offsets, read_topic, serving
from tests.ingest.waiting import until_async

pytestmark = pytest.mark.kafka

BILLING = "billing-key-" + "b" * 31
CRM = "crm-key-" + "c" * 35
EVENT = {"user_id": "u-1", "payload": "{}"}


def key_file(tmp_path: Path, *pairs: tuple[str, str]) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text("".join(key_line(name, key) + "\n" for name, key in pairs))
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ingest_key(headers: Any) -> bytes:
    found = [value for name, value in headers or [] if name == "ingest-key"]
    assert len(found) == 1
    assert isinstance(found[0], bytes)
    return found[0]


def url(server: object, path: str) -> str:
    return f"http://127.0.0.1:{server.config.port}{path}"  # type: ignore[attr-defined]


async def test_keys_rate_limits_and_nothing_written_for_refused_requests(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        ingest_settings,
        api_keys_file=str(key_file(tmp_path, ("billing", BILLING), ("crm", CRM))),
        key_rate=0.01,
        key_burst=3,
    )
    async with serving(settings) as server, httpx.AsyncClient(timeout=30) as client:
        missing = await client.put(url(server, "/events"), json=EVENT)
        wrong = await client.put(url(server, "/events"), json=EVENT, headers=bearer(CRM + "x"))
        basic = await client.put(
            url(server, "/events"), json=EVENT, headers={"Authorization": f"Basic {BILLING}"}
        )
        batch_without = await client.post(url(server, "/events/batch"), json=[EVENT])
        accepted = [
            await client.put(url(server, "/events"), json=EVENT, headers=bearer(BILLING))
            for _ in range(3)
        ]
        over = await client.put(url(server, "/events"), json=EVENT, headers=bearer(BILLING))
        other_key = await client.post(
            url(server, "/events/batch"), json=[EVENT, EVENT], headers=bearer(CRM)
        )
        health = [(await client.get(url(server, p))).status_code for p in ("/healthz", "/readyz")]
        metrics = (await client.get(url(server, "/metrics"))).text

    for refused in (missing, wrong, basic, batch_without):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == "Bearer"
        problem = refused.json()
        assert problem["type"] == "urn:event-delivery:problem:unauthorized"
        assert problem["status"] == 401
        assert set(problem) == {"type", "title", "status", "detail"}
    assert [r.status_code for r in accepted] == [202, 202, 202]
    assert over.status_code == 429
    assert over.json()["type"] == "urn:event-delivery:problem:rate-limited"
    assert int(over.headers["retry-after"]) >= 1
    assert other_key.status_code == 202, "each key has its own bucket"
    assert health == [200, 200]

    records = read_topic(settings.bootstrap_servers, settings.topic, 5)
    assert sum(end_offsets(settings.bootstrap_servers, settings.topic)) == 5
    names = sorted(ingest_key(record.headers()) for record in records)
    assert names == [b"billing", b"billing", b"billing", b"crm", b"crm"]

    # (the key metric's values are checked end to end, in tests/security)
    for secret in (BILLING, CRM):
        assert secret not in metrics


async def test_keys_are_added_and_revoked_without_a_restart(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    path = key_file(tmp_path, ("billing", BILLING))
    settings = dataclasses.replace(ingest_settings, api_keys_file=str(path))
    async with serving(settings) as server, httpx.AsyncClient(timeout=30) as client:

        async def status(key: str) -> int:
            answer = await client.put(url(server, "/events"), json=EVENT, headers=bearer(key))
            return answer.status_code

        assert await status(CRM) == 401
        path.write_text(key_line("billing", BILLING) + "\n" + key_line("crm", CRM) + "\n")

        async def crm_let_in() -> bool:
            return await status(CRM) == 202

        await until_async(crm_let_in, within=10, interval=0.1, what="a new key is let in")
        path.write_text(key_line("crm", CRM) + "\n")

        async def billing_revoked() -> bool:
            return await status(BILLING) == 401

        await until_async(billing_revoked, within=10, interval=0.1, what="a key is revoked")


async def test_sighup_rereads_the_file_at_once(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    path = key_file(tmp_path, ("billing", BILLING))
    settings = dataclasses.replace(ingest_settings, api_keys_file=str(path))
    async with serving(settings) as server, httpx.AsyncClient(timeout=30) as client:
        before = os.stat(path)
        # Same size, same inode, same mtime: only SIGHUP can tell ingest the file changed.
        with path.open("r+") as file:
            file.write(key_line("crmcrmc", CRM) + "\n")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(path).st_size == before.st_size
        os.kill(os.getpid(), signal.SIGHUP)

        async def crm_let_in() -> bool:
            answer = await client.put(url(server, "/events"), json=EVENT, headers=bearer(CRM))
            return answer.status_code == 202

        await until_async(crm_let_in, within=10, interval=0.05, what="SIGHUP re-read the file")


async def test_metrics_can_be_put_behind_the_keys(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        ingest_settings,
        api_keys_file=str(key_file(tmp_path, ("prometheus", CRM))),
        metrics_need_key=True,
    )
    async with serving(settings) as server, httpx.AsyncClient(timeout=30) as client:
        without = await client.get(url(server, "/metrics"))
        with_key = await client.get(url(server, "/metrics"), headers=bearer(CRM))
        ready = await client.get(url(server, "/readyz"))
    assert without.status_code == 401
    assert without.json()["type"] == "urn:event-delivery:problem:unauthorized"
    assert with_key.status_code == 200
    assert ready.status_code == 200


async def test_without_keys_ingest_is_open_and_says_so_once(
    ingest_settings: IngestSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "ingest"):
        async with serving(ingest_settings) as server, httpx.AsyncClient(timeout=30) as client:
            answer = await client.put(url(server, "/events"), json=EVENT)
    assert answer.status_code == 202
    open_lines = [r for r in caplog.records if "ingest is open" in r.getMessage()]
    assert len(open_lines) == 1
    assert open_lines[0].levelno == logging.WARNING


async def test_rate_limited_requests_are_one_warning_per_burst_with_the_count(
    ingest_settings: IngestSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(
        ingest_settings,
        api_keys_file=str(key_file(tmp_path, ("billing", BILLING))),
        key_rate=0.001,
        key_burst=1,
    )
    caplog.set_level(logging.INFO, logger="ingest")
    async with serving(settings) as server, httpx.AsyncClient(timeout=30) as client:
        answers = [
            await client.put(url(server, "/events"), json=EVENT, headers=bearer(BILLING))
            for _ in range(6)
        ]
        assert [a.status_code for a in answers] == [202] + [429] * 5

        def refusal_lines() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "rate limit" in r.getMessage()]

        first = refusal_lines()
        assert len(first) == 1, [r.getMessage() for r in first]
        assert first[0].levelno == logging.WARNING
        assert "key=billing" in first[0].getMessage()
        assert "count=1 " in first[0].getMessage()

        async def summed() -> bool:
            return len(refusal_lines()) == 2

        # The rest of the burst is summed in one line once the interval (10 s) is over.
        await until_async(summed, within=20, interval=0.2, what="the burst's summary line")
        summary = refusal_lines()[1]
        assert summary.levelno == logging.WARNING
        assert "count=4 in the last 10s" in summary.getMessage()
    # (their counts in /metrics are checked on a real ingest process, in test_metrics.py)
    assert BILLING not in caplog.text


async def test_idempotency_keys_are_scoped_by_the_api_key(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    # One key holder reusing another's Idempotency-Key must not give its event the other's id:
    # receivers that drop duplicates by id would drop the other's event.
    settings = dataclasses.replace(
        ingest_settings,
        api_keys_file=str(key_file(tmp_path, ("billing", BILLING), ("crm", CRM))),
    )
    same_key = {"Idempotency-Key": "order-1"}
    async with serving(settings) as server, httpx.AsyncClient(timeout=30) as client:
        answers = [
            await client.put(
                url(server, "/events"), json=EVENT, headers={**same_key, **bearer(key)}
            )
            for key in (BILLING, CRM, BILLING)  # billing's second is its retry
        ]
        batch = await client.post(
            url(server, "/events/batch"),
            json=[EVENT, EVENT],
            headers={"Idempotency-Key": "import", **bearer(CRM)},
        )
    assert [a.status_code for a in answers] == [202, 202, 202]
    ids = [a.json()["id"] for a in answers]
    assert ids == ["billing:order-1", "crm:order-1", "billing:order-1"]
    assert [r["id"] for r in batch.json()["results"]] == ["crm:import:0", "crm:import:1"]
    records = read_topic(settings.bootstrap_servers, settings.topic, 5)
    stored = sorted(decode(r.key(), r.value(), r.headers()).id for r in records)
    assert stored == sorted([*ids, "crm:import:0", "crm:import:1"])
