"""Reading and writing an experiment directory that someone else may have written.

An experiment directory is data from whoever could write the storage (a shared cluster
filesystem, a colleague's copy). So, reading:

* never through a symbolic link: files are opened with ``O_NOFOLLOW`` (and directories are found
  by ``os.walk``, which does not follow links), so ``error.txt -> ~/.netrc`` is refused, unread;
* never a FIFO or a device (``O_NONBLOCK``, then a regular-file check): no hang;
* at most a size cap, strict UTF-8, and JSON nesting checked *before* parsing.

Writing:

* only into a directory that is a real directory (not a link) owned by the user, or one this
  process creates;
* every file through a temporary file in that directory and ``os.replace``: a planted
  ``report.html -> ~/.bashrc`` link is replaced, never written through, and a crash never leaves
  half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MAX_JSON_BYTES = 8 << 20  # config.json / summary.json are a few KB
MAX_RECORDS_BYTES = 256 << 20  # ~50,000 epochs of records with per-layer sparsities
MAX_JSON_DEPTH = 32  # our files nest 4 levels at most
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class Refused(ValueError):
    """A file or directory the analysis will not read or write; the message says why."""


# ---------------------------------------------------------------------- reading


def entry_exists(path: Path) -> bool:
    """Whether a directory entry is there (a symlink counts, dangling or not; nothing is read)."""
    try:
        os.lstat(path)
    except OSError:
        return False
    return True


def read_bytes(path: Path, limit: int, tail: bool = False) -> bytes:
    """A regular file's bytes, not through a symlink; more than ``limit`` bytes is refused
    (``tail``: only the last ``limit`` bytes are read instead)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as err:
        if os.path.islink(path):
            raise Refused(f"{path}: a symbolic link; not followed, not read") from None
        raise Refused(f"{path}: cannot be read ({err.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # a directory, FIFO, socket or device
        os.close(fd)
        raise Refused(f"{path}: not a regular file; not read")
    with os.fdopen(fd, "rb", buffering=0) as f:
        if st.st_size > limit:
            if not tail:
                raise Refused(f"{path}: {st.st_size:,} bytes; at most {limit:,} are read")
            f.seek(st.st_size - limit)
        # what fstat reported (+1 shows growth): never a limit-sized buffer per small file
        data = f.read(min(st.st_size, limit) + 1)
        return data[-limit:] if tail else data


def read_text(path: Path, limit: int) -> str:
    """:func:`read_bytes` as strict UTF-8."""
    data = read_bytes(path, limit)
    if len(data) > limit:
        raise Refused(f"{path}: more than {limit:,} bytes; not read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Refused(f"{path}: not UTF-8 (byte {err.start})") from None


#: A JSON string on one line; the closing quote is optional so that an unterminated string
#: matches to the end of its line at once (no quadratic retrying from every quote).
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"?')


def json_depth(text: str) -> int:
    """An upper bound of the nesting of ``[``/``{`` in JSON text, without parsing.

    Fast path: the count of opening brackets. Otherwise strings are blanked (a bracket inside a
    string does not nest) and the running depth is a numpy cumulative sum: linear, C-speed.
    """
    opens = text.count("[") + text.count("{")
    if opens <= MAX_JSON_DEPTH:
        return opens
    codes = np.frombuffer(_STRING.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    step = np.isin(codes, (91, 123)).astype(np.int32) - np.isin(codes, (93, 125)).astype(np.int32)
    return int(np.cumsum(step).max(initial=0))


def parse_json(text: str, where: Path) -> Any:
    """``json.loads`` after a depth check (deep nesting would exhaust the C stack or recursion)."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise Refused(f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels; not parsed")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise Refused(f"{where}: not valid JSON ({str(err)[:120]})") from None


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    return parse_json(read_text(path, limit), path)


# ---------------------------------------------------------------------- writing


def output_dir(path: Path) -> Path:
    """``path`` as a directory this user may write the analysis into; created when missing.

    Refused: a symbolic link (even to a directory: it could point anywhere), something that is
    not a directory, or a directory owned by another user (they could swap files under us).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            path.mkdir(parents=True)
        except OSError as err:
            raise Refused(f"{path}: cannot be created ({err.strerror})") from None
        return path
    if stat.S_ISLNK(st.st_mode):
        raise Refused(
            f"{path}: a symbolic link; the analysis does not write through links. Remove it or "
            "give --out DIR"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(f"{path}: exists and is not a directory; give --out DIR")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise Refused(
            f"{path}: owned by another user (uid {st.st_uid}); the analysis writes only into "
            "directories you own. Give --out DIR"
        )
    return path


def write_bytes(directory: Path, name: str, data: bytes) -> Path:
    """Write ``directory/name`` atomically: a private temp file, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644 & ~_UMASK)
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return directory / name


def write_text(directory: Path, name: str, text: str) -> Path:
    return write_bytes(directory, name, text.encode("utf-8"))


def move_into(src: Path, directory: Path, name: str) -> Path:
    """Move a file this process wrote (in a private temp dir) to ``directory/name`` atomically."""
    os.replace(src, directory / name)
    return directory / name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it
