"""Hostile manifest files: each is one ``ManifestError`` naming the file, at once.

Never a traceback, a hang or a blown-up memory: alias bombs, recursive aliases, deep nesting,
control characters, UTF-16, oversized files, FIFOs, devices and directories.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dispatcher.exceptions import ManifestError
from dispatcher.manifest import load_manifest
from dispatcher.manifest_file import MAX_DEPTH, MAX_MANIFEST_BYTES

pytestmark = pytest.mark.timeout(120)

Write = Callable[[str | bytes], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write_file(content: str | bytes) -> Path:
        path = tmp_path / "manifest.yaml"
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return path

    return write_file


def error_of(path: Path) -> str:
    started = time.monotonic()
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    assert time.monotonic() - started < 10, "refused, but only after a long walk"
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message


def alias_bomb(levels: int, width: int = 10) -> str:
    """``levels`` anchors, each a list of ``width`` aliases to the one before (width**levels)."""
    lines = ["    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"    l{level}: &l{level} [{aliases}]")
    return "\n".join(lines)


DESTINATION = "destinations:\n  - name: hook\n    type: http\n    url: http://127.0.0.1:9/\n"


def test_an_alias_bomb_under_an_unknown_destination_key_is_refused_at_once(write: Write) -> None:
    path = write(DESTINATION + "    bomb:\n" + alias_bomb(9).replace("    l", "      l"))
    message = error_of(path)
    assert "values once aliases are expanded" in message
    assert "at line" in message


def test_an_alias_bomb_inside_headers_is_refused_at_once(write: Write) -> None:
    path = write(DESTINATION + "    headers:\n" + alias_bomb(9).replace("    l", "      l"))
    assert "values once aliases are expanded" in error_of(path)


def test_an_alias_bomb_at_the_top_level_is_refused(write: Write) -> None:
    path = write("bomb:\n" + alias_bomb(9) + "\n" + DESTINATION)
    assert "once aliases are expanded" in error_of(path)


def test_a_few_aliases_are_still_fine(write: Write) -> None:
    path = write("""
destinations:
  - &base {name: one, type: mock, behavior: fail, retry: &retry {max_retries: 1}}
  - {<<: *base, name: two, retry: *retry}
""")
    manifest = load_manifest(path, environ={})
    assert [d.retry.max_retries for d in manifest.destinations] == [1, 1]


def test_a_recursive_alias_is_refused(write: Write) -> None:
    path = write("destinations: [&a {name: a, type: mock, behavior: succeed, x: *a}]\n")
    message = error_of(path)
    assert "recursive alias" in message
    assert "line 1" in message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_deep_nesting_is_refused(write: Write, depth: int) -> None:
    path = write("destinations: " + "[" * depth + "]" * depth + "\n")
    assert f"nested more than {MAX_DEPTH} levels deep" in error_of(path)


def test_deep_block_nesting_is_refused(write: Write) -> None:
    path = write("".join(f"{' ' * i}k{i}:\n" for i in range(1000)))
    assert "nested more than" in error_of(path)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(b"topic: a\x00b\n", "contains a NUL byte on line 1", id="nul"),
        pytest.param(
            b"topic: events\ngroup_prefix: a\x01b\n",
            "control character U+0001 at line 2, column 16",
            id="control",
        ),
        pytest.param(b"topic: a\x1bb\n", "U+001B", id="escape"),
        pytest.param(DESTINATION.encode("utf-16-le"), "UTF-16", id="utf16-no-bom"),
        pytest.param(DESTINATION.encode("utf-16-be"), "UTF-16", id="utf16be-no-bom"),
        pytest.param(DESTINATION.encode("utf-16"), "not UTF-8 text", id="utf16-with-bom"),
        pytest.param("topic: \u0085\x7f\n".encode(), "U+007F", id="delete"),
    ],
)
def test_bytes_that_are_not_manifest_text(write: Write, content: bytes, says: str) -> None:
    assert says in error_of(write(content))


def test_a_utf8_bom_is_fine(write: Write) -> None:
    path = write(b"\xef\xbb\xbf" + DESTINATION.encode())
    assert load_manifest(path, environ={}).destinations[0].name == "hook"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param(
            "2026-13-45", "cannot read this value as tag:yaml.org,2002:timestamp", id="date"
        ),
        pytest.param(
            "1" * 5000, "cannot read this value as tag:yaml.org,2002:int", id="5000-digits"
        ),
        pytest.param("!!bool maybe", "cannot read this value", id="bool-tag"),
        pytest.param("!!timestamp soon", "cannot read this value", id="timestamp-tag"),
        pytest.param("!!python/object:os.system x", "could not determine a constructor", id="py"),
    ],
)
def test_scalars_yaml_itself_cannot_read(write: Write, value: str, says: str) -> None:
    message = error_of(write(f"topic: events\ngroup_prefix: {value}\n" + DESTINATION))
    assert message.startswith(f"{write('x').parent / 'manifest.yaml'}: not valid YAML at line 2")
    assert says in message


def test_a_file_over_the_size_cap_is_refused_unread(write: Write) -> None:
    path = write(DESTINATION + "#" * MAX_MANIFEST_BYTES + "\n")
    assert "larger than 1024 KiB" in error_of(path)


def test_a_file_just_under_the_cap_is_read(write: Write) -> None:
    path = write(DESTINATION + "#" * (MAX_MANIFEST_BYTES - len(DESTINATION) - 1) + "\n")
    assert load_manifest(path, environ={}).destinations


def test_dev_zero_is_not_read(tmp_path: Path) -> None:
    assert "not a regular file (a character device)" in error_of(Path("/dev/zero"))


def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "manifest.yaml"
    os.mkfifo(fifo)
    assert "not a regular file (a FIFO)" in error_of(fifo)


def test_a_huge_name_is_quoted_shortened(write: Write) -> None:
    name = "n" * 500_000  # the file cap stops 5 MB names before they are read
    message = error_of(write(f"destinations:\n  - {{name: '{name} x', type: mock}}\n"))
    assert len(message) < 1000
    assert f"destination '{'n' * 80}…: field 'name': '{'n' * 80}… is not usable" in message


def test_a_long_secret_is_hidden_before_quotes_are_shortened(write: Write) -> None:
    secret = "S" * 200
    path = write("destinations:\n  - {name: m, type: mock, behavior: succeed, timeout: '${T}'}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={"T": secret})
    assert "SSSS" not in str(caught.value)
    assert "'${T}'" in str(caught.value)


# --- the same through the command line: exit 1 with the message, never 2 or a traceback ---


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", "--manifest", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=60,  # a loaded machine imports slowly; the old hangs were endless
        check=False,
    )


@pytest.mark.parametrize("kind", ["directory", "fifo", "dev-zero", "bomb", "deep"])
def test_check_exits_1_with_the_file_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "manifest.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "bomb":
        path.write_text(DESTINATION + "    bomb:\n" + alias_bomb(9).replace("    l", "      l"))
    else:
        path.write_text("destinations: " + "[" * 5000 + "]" * 5000 + "\n")
    result = check(path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: {path}: ")
    assert "Traceback" not in result.stderr
    assert len(result.stderr) < 2000
