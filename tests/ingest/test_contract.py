"""The OpenAPI document is what the server does: schemathesis generates requests from
``/schema/openapi.json`` (valid and invalid ones, a bounded number per operation) against a
running ``ingest`` and checks every answer against the document: status codes, content types,
headers and bodies as documented, no 5xx, valid data accepted and invalid data refused."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from ingest import IngestSettings, create_app
from tests.kafka_fixtures import free_port

pytestmark = pytest.mark.kafka

EXAMPLES = 100
"""Generated requests per operation (derandomized, so every run sends the same ones): the
module takes about 15 s. 300 random ones per operation found nothing more."""


@pytest.fixture(scope="module")
def ingest_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = Path(tmp_path_factory.mktemp("contract")) / "ingest.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "ingest", "--port", str(port),
                "--bootstrap-servers", kafka_bootstrap,
                "--topic", f"events.contract.{uuid.uuid4().hex[:8]}", "--partitions", "2",
                "--ack-timeout", "5",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ingest did not get ready:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


# Built from the app itself (no network needed to build it), with the settings the server
# below runs with; the test then checks that the running server agrees with it.
schema = schemathesis.openapi.from_dict(create_app(IngestSettings()).openapi_schema.to_schema())
schema.config.generation.update(modes=list(schemathesis.GenerationMode))  # valid and invalid


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_server_does_what_its_openapi_document_says(
    case: schemathesis.Case[Any], ingest_url: str
) -> None:
    case.call_and_validate(base_url=ingest_url)


@pytest.mark.parametrize(
    "user_id",
    ["\U000e0041", "\u3164", "\u115f", "\u2800", "\ufe0f", "u\U000e0041", "u", "\u2764\ufe0f"],
)
def test_the_served_pattern_and_the_server_agree_beyond_generated_examples(
    ingest_url: str, user_id: str
) -> None:
    # Characters generated examples rarely hit: ones that show nothing on their own, and
    # format characters beyond the Basic Multilingual Plane (spelt as themselves in the
    # pattern, since no \u escape reaches them).
    document = httpx.get(f"{ingest_url}/schema/openapi.json", timeout=10).json()
    put = document["paths"]["/events"]["put"]["requestBody"]["content"]["application/json"]
    pattern = put["schema"]["properties"]["user_id"]["pattern"]
    answer = httpx.put(
        f"{ingest_url}/events", json={"user_id": user_id, "payload": "p"}, timeout=30
    )
    assert answer.status_code == (202 if re.search(pattern, user_id) else 422), answer.text
    assert (answer.status_code == 202) == (user_id in ("u", "\u2764\ufe0f"))
