"""Generated manifests, valid and broken: each loads, or is one ``ManifestError`` naming the
file, quickly. Never another exception, a hang, or (through the CLI) an exit code besides 0/1.

The generators mix plausible manifests (the real keys, good and bad values), random YAML
structures, mutated text, alias bombs, deep nesting and raw bytes: the shapes that once gave
tracebacks and hangs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.exceptions import ManifestError
from dispatcher.manifest import Manifest, load_manifests

SECONDS_PER_MANIFEST = 10.0
"""Generous for a shared machine: the shapes that hung used to take minutes."""

_NAMES = st.sampled_from(["a", "b", "hook", "a b", "", "x" * 300, "ü", "${N}"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "", "mock", "http", "fail", "succeed", "2s", "2 s", "\u0663s", "1h", "7d", "soon",
            "http://x/", "http://x:99999/", "http://exa mple/", "http://", "${X}", "${CRLF}",
            "$${X}", "${", "localhost", "h:1", ",,", "500-599", "a\r\nb", "a\x00b", "\t",
        ]
    ),
    st.text(max_size=20),
)  # fmt: skip
_KEYS = st.sampled_from(
    [
        "topic", "dead_letter_topic", "group_prefix", "start_from", "kafka", "defaults",
        "destinations", "name", "type", "behavior", "url", "headers", "retry", "breaker",
        "parking", "timeout", "concurrency", "max_buffered", "max_buffered_bytes",
        "max_retries", "bootstrap_servers", "replication_factor", "min_insync_replicas",
        "retry_schedule", "cooldown", "max_cooldown", "retryable_status", "permanent_status",
        "destination_status", "retention", "x",
    ]
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
_POLICY = st.dictionaries(_KEYS, _VALUES, max_size=3)
_DESTINATION = st.fixed_dictionaries(
    {"name": _NAMES, "type": st.sampled_from(["mock", "http", "nope"])},
    optional={
        "behavior": st.sampled_from(["succeed", "fail", "timeout", "maybe"]),
        "url": _SCALARS,
        "headers": st.dictionaries(st.sampled_from(["A", "B C", "", "X:"]), _SCALARS, max_size=2),
        "retry": _POLICY,
        "breaker": _POLICY,
        "parking": _POLICY,
        "timeout": _SCALARS,
        "concurrency": _SCALARS,
        "max_buffered": _SCALARS,
        "max_buffered_bytes": _SCALARS,
        "retryable_status": st.lists(_SCALARS, max_size=3),
        "x": _VALUES,
    },
)
_PLAUSIBLE = st.fixed_dictionaries(
    {"destinations": st.lists(_DESTINATION, min_size=1, max_size=3)},
    optional={
        "kafka": st.dictionaries(_KEYS, _SCALARS, max_size=3),
        "defaults": st.dictionaries(_KEYS, _VALUES, max_size=3),
        "topic": _NAMES,
        "start_from": _SCALARS,
    },
)


def _dumped(document: object) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8")


@st.composite
def _alias_bomb(draw: st.DrawFn) -> bytes:
    levels = draw(st.integers(2, 12))
    width = draw(st.integers(2, 12))
    lines = ["      l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"      l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    where = draw(st.sampled_from(["bomb", "headers", "retry", "x"]))
    head = "destinations:\n  - name: a\n    type: http\n    url: http://x/\n"
    return (head + f"    {where}:\n" + "\n".join(lines) + "\n").encode()


@st.composite
def _deep(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 3000))
    opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
    return ("destinations: " + opener * depth + closer * depth + "\n").encode()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    text = bytearray(_dumped(draw(_PLAUSIBLE)))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if action == "insert":
            text[at:at] = draw(
                st.sampled_from([b"&a ", b"*a", b"\x00", b"\x01", b"\xff", b"\t", b": ", b"- "])
                | st.binary(max_size=4)
            )
        elif action == "delete":
            del text[at : at + draw(st.integers(1, 10))]
        else:
            del text[at:]
    return bytes(text)


_FILES = st.one_of(
    _PLAUSIBLE.map(_dumped),
    st.dictionaries(_KEYS, _VALUES, max_size=5).map(_dumped),
    _VALUES.map(_dumped),
    _mutated(),
    _alias_bomb(),
    _deep(),
    st.binary(max_size=200),
    _PLAUSIBLE.map(lambda d: yaml.safe_dump(d).encode("utf-16-le")),
    st.just(b"destinations: [&a {name: a, type: mock, behavior: succeed, x: *a}]\n"),
)
_ENVIRON = st.fixed_dictionaries(
    {},
    optional={
        "X": st.sampled_from(["v", "", "2s", "a\r\nb", "http://x/"]),
        "CRLF": st.just("s3cr3t\r\nInjected: 1"),
        "N": st.sampled_from(["n", "a b"]),
        "KAFKA_BOOTSTRAP_SERVERS": st.sampled_from(["", "h:1", "localhost", ",,"]),
        "KAFKA_REPLICATION_FACTOR": st.sampled_from(["", "3", "x", "0"]),
    },
)


def _outcome(path: Path, environ: dict[str, str]) -> tuple[Manifest, ...] | ManifestError:
    try:
        return load_manifests([path], environ=environ)
    except ManifestError as error:
        return error


@settings(
    max_examples=300,
    deadline=None,  # timed below, with a bound a shared machine can keep
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=_FILES, environ=_ENVIRON)
def test_every_generated_manifest_loads_or_names_its_file(
    tmp_path: Path, content: bytes, environ: dict[str, str]
) -> None:
    path = tmp_path / "generated.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    outcome = _outcome(path, environ)
    assert time.monotonic() - started < SECONDS_PER_MANIFEST
    if isinstance(outcome, ManifestError):
        message = str(outcome)
        assert message.startswith(f"{path}: ")
        assert len(message) < 2000, "an error quoting far too much"
        assert "s3cr3t" not in message, "a substituted value shown"
        return
    for manifest in outcome:
        assert manifest.destinations


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=st.one_of(_PLAUSIBLE.map(_dumped), _mutated(), _alias_bomb(), _deep()))
def test_check_exits_0_or_1_for_generated_manifests(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "generated.yaml"
    path.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "--manifest", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        assert result.stdout.startswith("ok: 1 manifest(s)")
    else:
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"error: {path}: ")


@pytest.mark.parametrize("levels", [7, 9])
def test_the_bombs_of_the_review_are_refused_quickly(tmp_path: Path, levels: int) -> None:
    lines = ["    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, levels)]
    path = tmp_path / "bomb.yaml"
    path.write_text(
        "destinations:\n  - name: a\n    type: mock\n    behavior: succeed\n    unknown:\n"
        + "\n".join("  " + line for line in lines)
        + "\n"
    )
    started = time.monotonic()
    outcome = _outcome(path, {})
    assert isinstance(outcome, ManifestError)
    assert time.monotonic() - started < 5.0  # it used to take 7.7 s (7 levels) and > 60 s
