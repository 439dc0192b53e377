"""Reading a manifest file that may be hostile: never a hang, a blown-up memory or a traceback.

The file must be a regular file (checked on the open descriptor, which is opened non-blocking,
so a FIFO cannot block and ``/dev/zero`` is never read) of at most ``MAX_MANIFEST_BYTES`` of
UTF-8 without control characters. Its YAML may nest at most ``MAX_DEPTH`` levels and hold at
most ``MAX_NODES`` values once aliases are expanded, with no alias inside its own anchor; a key
written twice in one mapping and a scalar PyYAML's constructor cannot read are errors too.
Every problem is one sentence, with the line where there is one.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import yaml

__all__ = ["MAX_DEPTH", "MAX_MANIFEST_BYTES", "MAX_NODES", "read_document"]

# YAML's printable set (PyYAML's Reader refuses the rest, with a message naming no file).
_CONTROL = re.compile(r"[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

MAX_MANIFEST_BYTES = 1024 * 1024
"""Largest manifest file read (1 MiB); real ones are a few KiB."""
MAX_DEPTH = 64
"""Deepest nesting of YAML collections accepted (a manifest needs about 5)."""
MAX_NODES = 100_000
"""Most values (scalars and collections) a document may hold once its aliases are expanded."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what would make loading a manifest hang, blow up or lie.

    A key written twice in one mapping (YAML keeps the last); nesting deeper than ``MAX_DEPTH``
    (PyYAML composes recursively, so 1,000 levels is a ``RecursionError``); and a scalar its
    constructor chokes on (``2026-13-45``, a 5,000-digit integer) which PyYAML lets escape as
    a bare ``ValueError``. Aliases are checked on the composed graph by ``_check_aliases``.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep; a manifest needs a handful",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value as {node.tag}: {exc}", node.start_mark
            ) from exc

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        first_line: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            line = key_node.start_mark.line + 1
            seen = first_line.setdefault((key_node.tag, key_node.value), line)
            if seen != line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key_node.value!r} appears twice in one mapping (first on line {seen})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a recursive alias, and a document that aliases expand past ``MAX_NODES`` values.

    Aliases share nodes, so 500 bytes of them can stand for billions of values (a "billion
    laughs" bomb) that expanding ``${VAR}`` and checking would walk; an alias inside its own
    anchor makes a cycle that nothing can walk. Sizes are memoised per node, so this check is
    linear in the file, and iterative, so deep graphs cannot exhaust the stack.
    """
    sizes: dict[int, int] = {}
    ancestors: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            ancestors.discard(id(node))
            sizes[id(node)] = size = 1 + sum(sizes[id(child)] for child in children)
            if size > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"this holds more than {MAX_NODES} values once aliases are expanded (an alias"
                    " bomb?); a manifest needs far fewer",
                    node.start_mark,
                )
            continue
        if id(node) in sizes:
            continue
        ancestors.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in ancestors:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    "an alias refers to a node that contains it (a recursive alias)",
                    node.start_mark,
                )
            stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def read_document(path: Path, error: Callable[[str], Exception]) -> object:
    """The YAML document in ``path``; any problem raises ``error(problem)``.

    ``problem`` names no file: ``error`` adds it (the manifest's errors all start with it).
    """
    text = _read_text(path, error)
    try:
        loader = _StrictLoader(text)
    except yaml.YAMLError as exc:  # the reader checks every character up front
        raise error(f"not valid YAML: {exc}") from exc
    try:
        node = loader.get_single_node()
        if node is None:
            raise error("empty; a manifest is a mapping with at least 'destinations'")
        _check_aliases(node)
        document = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = "; ".join(filter(None, [exc.problem, exc.context]))
        raise error(f"not valid YAML{at}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if document is None:
        raise error("empty; a manifest is a mapping with at least 'destinations'")
    return document


def _read_text(path: Path, error: Callable[[str], Exception]) -> str:
    """The text of ``path``: a regular file of at most ``MAX_MANIFEST_BYTES`` of UTF-8.

    Opened non-blocking and checked with ``fstat`` before reading, so a FIFO cannot block
    ``--check`` and ``/dev/zero`` cannot fill memory; the read itself is capped too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise error("file not found; give the path of a manifest YAML file") from exc
    except IsADirectoryError as exc:
        raise error("is a directory; give the path of a manifest YAML file") from exc
    except OSError as exc:
        raise error(f"cannot be read: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise error("is a directory; give the path of a manifest YAML file")
        if not stat.S_ISREG(mode):
            raise error(
                f"not a regular file (a {_file_kind(mode)}); give the path of a manifest YAML file",
            )
        data = _read_at_most(fd, MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_MANIFEST_BYTES:
        raise error(
            f"larger than {MAX_MANIFEST_BYTES // 1024} KiB; a manifest is a small YAML file"
        )
    if b"\0" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise error(
            f"contains a NUL byte on line {line}; a manifest is UTF-8 text (saved as UTF-16"
            " or UTF-32? save it as UTF-8)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if control := _CONTROL.search(text):
        line = text.count("\n", 0, control.start()) + 1
        column = control.start() - text.rfind("\n", 0, control.start())
        raise error(
            f"contains the control character U+{ord(control[0]):04X} at line {line}, column"
            f" {column}; only tabs and line breaks may appear besides printable text",
        )
    return text


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0 and (chunk := os.read(fd, min(left, 65_536))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device")]
    kinds += [(stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")]
    return next((name for test, name in kinds if test(mode)), "special file")
