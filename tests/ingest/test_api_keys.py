"""API keys, key files and rate limits as plain code: no server, no Kafka."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.api_keys import ApiKeys, KeyFileError, key_line, new_key, parse_key_file
from ingest.cli import main
from ingest.exceptions import SettingsError
from ingest.key_ring import KeyRing
from ingest.rate_limit import RateLimits, TokenBucket

KEY = "k" * 43


def keys_of(*pairs: tuple[str, str]) -> ApiKeys:
    return parse_key_file("\n".join(key_line(name, key) for name, key in pairs), "keys")


def test_a_bearer_key_in_the_file_is_known_by_its_name() -> None:
    keys = keys_of(("billing", KEY), ("crm", "other-key"))
    assert keys.authenticate(f"Bearer {KEY}") == "billing"
    assert keys.authenticate(f"bearer  {KEY}") == "billing"
    assert keys.authenticate("Bearer other-key") == "crm"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {KEY}", f"Bearer {KEY}x", KEY, f"Bearer {KEY} y"],
)
def test_anything_else_is_no_key(header: str | None) -> None:
    assert keys_of(("billing", KEY)).authenticate(header) is None


def test_no_keys_know_nobody() -> None:
    assert ApiKeys().authenticate(f"Bearer {KEY}") is None
    assert ApiKeys().authenticate("Bearer ") is None


def test_the_file_holds_the_digest_never_the_key() -> None:
    line = key_line("billing", KEY)
    assert line == f"billing:{hashlib.sha256(KEY.encode()).hexdigest()}"
    assert KEY not in line


def test_new_keys_are_32_random_bytes() -> None:
    assert len({new_key() for _ in range(100)}) == 100
    assert len(new_key()) == 43  # base64 of 32 bytes, unpadded


def test_comments_and_blank_lines_are_skipped() -> None:
    text = f"# billing team\n\n{key_line('billing', KEY)}\n   \n"
    assert parse_key_file(text, "keys").authenticate(f"Bearer {KEY}") == "billing"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (KEY, "line 2: expected name:sha256-hex"),
        ("billing:abc", "line 2: expected name:sha256-hex"),
        (f"bil ling:{'0' * 64}", "line 2: key name must be"),
        (f":{'0' * 64}", "line 2: key name must be"),
        (key_line("ok", "other"), "line 2: key name 'ok' appears twice"),
    ],
)
def test_a_bad_line_is_named_and_never_quoted(line: str, says: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        parse_key_file(f"{key_line('ok', KEY)}\n{line}", "keys.txt")
    assert str(caught.value).startswith("keys.txt: ")
    assert says in str(caught.value)
    assert KEY not in str(caught.value)


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(10.0) for _ in range(3)] == [None, None, None]
    assert bucket.take(10.0) == pytest.approx(0.5)
    assert bucket.take(10.25) == pytest.approx(0.25)
    assert bucket.take(10.5) is None
    assert bucket.take(100.0) is None  # refilled, but never above the burst
    assert [bucket.take(100.0) for _ in range(3)] == [None, None, pytest.approx(0.5)]


def test_each_key_has_its_own_bucket_and_waits_are_whole_seconds() -> None:
    limits = RateLimits(rate=0.1, burst=1)
    assert limits.retry_after("a", 0.0) is None
    assert limits.retry_after("a", 0.0) == 10
    assert limits.retry_after("b", 0.0) is None
    assert limits.retry_after("a", 9.5) == 1
    assert RateLimits(rate=0.0, burst=1).retry_after("a", 0.0) is None


def test_the_ring_rereads_a_changed_file_and_keeps_old_keys_after_a_bad_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(key_line("old", KEY) + "\n")
    ring = KeyRing(path)
    path.write_text(key_line("new", KEY) + "\n# grown\n")
    assert ring.current(0.0).authenticate(f"Bearer {KEY}") == "new"
    path.write_text(KEY + "\n")  # someone pasted the key itself
    with caplog.at_level(logging.ERROR, "ingest"):
        assert ring.current(5.0).authenticate(f"Bearer {KEY}") == "new"
    assert "api keys file not reloaded; keeping the 1 keys in force" in caplog.text
    assert KEY not in caplog.text


def test_the_ring_looks_at_the_file_at_most_once_a_second_but_reload_is_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(key_line("old", KEY) + "\n")
    ring = KeyRing(path)
    ring.current(100.0)
    path.write_text(key_line("new", KEY) + "\n")
    assert ring.current(100.5).authenticate(f"Bearer {KEY}") == "old"
    ring.reload()  # what SIGHUP calls
    assert ring.current(100.6).authenticate(f"Bearer {KEY}") == "new"


def test_a_missing_or_bad_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"api keys file not usable: .*No such file"):
        KeyRing(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("nonsense\n")
    with pytest.raises(SettingsError, match="line 1: expected name:sha256-hex"):
        KeyRing(tmp_path / "bad.txt")


def test_api_key_new_appends_a_line_and_prints_the_key_alone_last(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(key_line("first", "x"))  # no final newline: the new line still goes apart
    result = CliRunner().invoke(main, ["api-key", "new", "billing", "--file", str(path)])
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[-1]
    assert len(key) == 43
    keys = KeyRing(path).keys
    assert keys.authenticate(f"Bearer {key}") == "billing"
    assert keys.authenticate("Bearer x") == "first"
    assert key not in path.read_text()


def test_api_key_new_creates_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    result = CliRunner().invoke(main, ["api-key", "new", "billing", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert KeyRing(path).keys.authenticate(f"Bearer {result.stdout.splitlines()[-1]}") == "billing"


def test_api_key_new_refuses_a_taken_or_bad_name(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(key_line("billing", "x") + "\n")
    taken = CliRunner().invoke(main, ["api-key", "new", "billing", "--file", str(path)])
    assert taken.exit_code == 2
    assert "already has a key named 'billing'" in taken.output
    bad = CliRunner().invoke(main, ["api-key", "new", "no good", "--file", str(path)])
    assert bad.exit_code == 2
    assert "key name must be" in bad.output
    assert path.read_text() == key_line("billing", "x") + "\n"
