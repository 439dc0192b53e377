"""Event ids from Idempotency-Keys, scoped by the API key's name: pure, with the inputs given."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from ingest.event_ids import event_id

# What ingest lets through: key names as the key file allows them, Idempotency-Keys as the
# header's pattern does (printable ASCII without space or colon).
names = st.none() | st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
keys = st.from_regex(r"[!-9;-~]{1,256}", fullmatch=True)
indexes = st.none() | st.integers(min_value=0, max_value=999)


def test_without_an_idempotency_key_each_event_gets_a_new_uuid() -> None:
    ids = {event_id(None, key_name="billing") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f-]{36}", i) for i in ids)


def test_without_api_keys_the_idempotency_key_is_the_id_as_before() -> None:
    assert event_id("order-1", key_name=None) == "order-1"
    assert event_id("import", key_name=None, index=3) == "import:3"


def test_with_api_keys_the_id_is_scoped_by_the_key_name() -> None:
    assert event_id("order-1", key_name="billing") == "billing:order-1"
    assert event_id("import", key_name="crm", index=0) == "crm:import:0"


@given(names, keys, indexes, names, keys, indexes)
def test_different_senders_keys_or_items_never_share_an_id(  # noqa: PLR0917
    name_a: str | None,
    key_a: str,
    index_a: int | None,
    name_b: str | None,
    key_b: str,
    index_b: int | None,
) -> None:
    same = event_id(key_a, key_name=name_a, index=index_a) == event_id(
        key_b, key_name=name_b, index=index_b
    )
    # With keys configured every id is scoped, so compare within one mode of ingest.
    if (name_a is None) == (name_b is None):
        assert same == ((name_a, key_a, index_a) == (name_b, key_b, index_b))
