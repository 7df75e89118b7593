"""The one YAML reader for user input: specs, ``--set`` values and the spec.yaml analysis reads.

``yaml.safe_load`` builds no Python objects beyond plain data, but it still accepts inputs that
hurt us later: a duplicated section silently wins, an alias graph of a few hundred bytes stands
for a billion values ("billion laughs": it hangs whatever walks or formats it: json.dumps,
pydantic, an error message), bytes that are not UTF-8 surface as tracebacks. This loader refuses
them while *composing*, before any Python value exists:

* the document, with every alias expanded, may hold at most :data:`MAX_NODES` values and nest
  :data:`MAX_DEPTH` levels (counted per node, so sharing is fine and a bomb stops at its first
  oversized node); an alias may not point into its own node (a recursive structure);
* a mapping may not repeat a key (merge keys ``<<`` still override, as YAML says);
* input is strict UTF-8 of at most :data:`MAX_BYTES`; PyYAML's reader refuses control characters.

One reading differs from ``safe_load``: numbers in exponent notation without a dot or an
exponent sign (``1e-3``, ``1e9``, ``1.0e9``) are floats, as in YAML 1.2 and JSON. PyYAML follows
YAML 1.1 and reads them as *strings*, which the strict config types would then refuse.

Errors are :class:`YamlInputError` with a message of at most :data:`MAX_MESSAGE` characters that
never formats the offending value; :func:`brief` is the bounded ``repr`` for messages elsewhere.
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # a hand-written spec is a few KB; 1 MiB leaves room and bounds the parse
MAX_NODES = 100_000  # values after alias expansion (a 20,000-point grid check is the largest use)
MAX_DEPTH = 64
MAX_MESSAGE = 600


class YamlInputError(ValueError):
    """The input is not YAML we accept; the message says where (file, line) and why."""


class _Refused(yaml.YAMLError):
    """Raised inside the loader; turned into YamlInputError by :func:`loads`."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts expanded nodes while composing and refuses duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> values below it, aliases expanded
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # the anchor's node is still being composed
                raise _Refused(f"line {line}: alias *{event.anchor} refers to a node that holds it")
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"line {line}: nested more than {MAX_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes[id(v)] for v in node.value)
        else:
            size = 1
        if size > MAX_NODES:
            raise _Refused(
                f"line {line}: more than {MAX_NODES:,} values once aliases are expanded "
                "(an alias bomb?); write the values out or use fewer aliases"
            )
        self._sizes[id(node)] = size
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise _Refused(
                        f"line {key_node.start_mark.line + 1}: key {brief(key)} appears twice "
                        "in the same mapping; keep one (a repeated section would silently win)"
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+\Z"),
    list("-+0123456789."),
)


def loads(text: str, where: str) -> Any:
    """Parse one YAML document from ``text``; ``where`` names the source in messages."""
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses control characters right here
        return loader.get_single_data()
    except _Refused as err:
        raise YamlInputError(cap(f"{where}: {err}")) from None
    except yaml.YAMLError as err:  # PyYAML's own messages quote at most a short snippet
        detail = str(err).replace('in "<unicode string>", ', "")
        raise YamlInputError(cap(f"{where}: not valid YAML: {detail}")) from None
    except RecursionError:  # defence in depth: MAX_DEPTH should stop it first
        raise YamlInputError(f"{where}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_bytes(data: bytes, where: str, max_bytes: int = MAX_BYTES) -> Any:
    """Decode strict UTF-8 (a BOM is allowed) and parse; refuse more than ``max_bytes``."""
    if len(data) > max_bytes:
        raise YamlInputError(f"{where}: {len(data):,} bytes; at most {max_bytes:,} are read")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise YamlInputError(
            f"{where}: not UTF-8 text (byte {err.start} is 0x{data[err.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    return loads(text, where)


def read_file(path: str | Path, max_bytes: int = MAX_BYTES) -> Any:
    """Read a user's YAML file (a regular file, at most ``max_bytes``) and parse it.

    The path may be a symlink the user made: specs are the user's own input. Reading never
    blocks on a FIFO or a device (``O_NONBLOCK`` + a regular-file check).
    """
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise YamlInputError(f"{where}: no such file") from None
    except OSError as err:
        raise YamlInputError(f"{where}: cannot be read ({err.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # a directory, FIFO or device: never read (no hang)
        os.close(fd)
        raise YamlInputError(f"{where}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > max_bytes:
            raise YamlInputError(f"{where}: {st.st_size:,} bytes; at most {max_bytes:,} are read")
        data = f.read(max_bytes + 1)
    return load_bytes(data, where, max_bytes)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 4, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def brief(value: Any) -> str:
    """A ``repr`` of at most ~100 characters that never walks a large or shared structure."""
    return _REPR.repr(value)


def cap(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
