"""Trial checkpoints that are verified before they are trusted, and never run code when loaded.

torch does the heavy lifting (``torch.save`` / ``torch.load(weights_only=True)``, whose unpickler
accepts only tensors and plain containers); this module adds what a long sweep on shared storage
needs:

* **A manifest per checkpoint** (``manifest.json``: epoch, size and SHA-256 of ``trainer.pt``),
  written beside the state. A checkpoint whose file is missing, shorter or different from its
  manifest (a copy cut off by a crash or a full disk, a flipped bit) is *corrupt*.
* **The newest intact checkpoint wins**: :func:`load_newest` reads every ``checkpoint_*`` of a
  trial directory, newest epoch first, and returns the first that verifies and loads; each one
  skipped is a warning. None intact → the trial starts from scratch, with a warning. It never
  raises, so a corrupt checkpoint can never make a trial fail on every retry.
* **Plain data only**: :func:`check_plain` refuses, at save time, a state holding anything but
  tensors, numbers, strings, None and lists/tuples/dicts of them, so every checkpoint loads with
  ``weights_only=True`` (a planted pickle in the storage cannot run code).

Checkpoint directories live in the trial's storage directory, local or remote: every access goes
through the pyarrow filesystem Ray Tune hands the trial.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STATE_FILE = "trainer.pt"
MANIFEST_FILE = "manifest.json"
CHECKPOINT_PREFIX = "checkpoint_"
FORMAT = 1


def check_plain(obj: Any, where: str = "state") -> None:
    """Raise TypeError naming the first value that ``torch.load(weights_only=True)`` would refuse
    (or that would need code to rebuild): only tensors and plain containers may be saved."""
    import torch

    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor)):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not str/int")
            check_plain(v, f"{where}.{k}")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}; checkpoints hold only tensors "
        f"and plain containers (convert it in Trainer.state_dict, e.g. a Generator via get_state())"
    )


def write(state: dict[str, Any], directory: str, epoch: int) -> int:
    """Save ``state`` and its manifest into a local ``directory``; return the bytes written."""
    import torch

    check_plain(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    with open(os.path.join(directory, STATE_FILE), "wb") as f:
        f.write(data)
    manifest = {
        "format": FORMAT,
        "epoch": int(epoch),
        "file": STATE_FILE,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    with open(os.path.join(directory, MANIFEST_FILE), "w") as f:
        json.dump(manifest, f)
    return len(data)


@dataclass
class Restored:
    """What :func:`load_newest` found: the state (None → start from scratch) and why."""

    state: dict[str, Any] | None = None
    name: str | None = None  # the checkpoint directory it came from
    epoch: int | None = None
    warnings: list[str] = field(default_factory=list)


def _read(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.readall()


def _candidates(fs: Any, trial_path: str) -> list[tuple[int, str, dict[str, Any] | None]]:
    """(epoch, directory name, manifest) of every checkpoint directory, newest first: by the
    manifest's epoch; one without a manifest (epoch -1: written by an older version) or with one
    that does not parse (epoch -2: corrupt) goes first when its name (Ray's checkpoint index) is
    newer than every good one, else last."""
    import pyarrow.fs

    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(trial_path, allow_not_found=True))
    except OSError:
        return []
    out = []
    for info in infos:
        name = info.base_name
        if info.type != pyarrow.fs.FileType.Directory or not name.startswith(CHECKPOINT_PREFIX):
            continue
        manifest: dict[str, Any] | None = None
        try:
            manifest = json.loads(_read(fs, f"{info.path}/{MANIFEST_FILE}"))
            epoch = int(manifest["epoch"])  # type: ignore[index]
        except FileNotFoundError:
            manifest, epoch = None, -1
        except (OSError, ValueError, KeyError, TypeError):
            manifest, epoch = None, -2
        out.append((epoch, name, manifest))
    newest_ok = max((name for epoch, name, _ in out if epoch >= 0), default="")

    def order(c: tuple[int, str, Any]) -> tuple[int, int, str]:
        if c[0] >= 0:
            return (1, c[0], c[1])
        return (2 if c[1] > newest_ok else 0, 0, c[1])  # written after the newest good one?

    return sorted(out, key=order, reverse=True)


def _load(fs: Any, path: str, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """Verify one checkpoint against its manifest and load it; raise ValueError saying why not."""
    import torch

    try:
        data = _read(fs, f"{path}/{STATE_FILE}")
    except OSError as err:
        raise ValueError(f"{STATE_FILE} unreadable ({err})") from None
    if manifest is not None:
        if len(data) != manifest.get("bytes"):
            raise ValueError(
                f"{STATE_FILE} has {len(data)} bytes, its manifest says {manifest.get('bytes')} "
                f"(truncated)"
            )
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
            raise ValueError(f"{STATE_FILE} does not match its manifest's SHA-256 (corrupt)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling problem means: not usable
        raise ValueError(f"{STATE_FILE} does not load ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise ValueError(f"{STATE_FILE} is not a trainer state")
    if manifest is not None and state["epoch"] != manifest["epoch"]:
        raise ValueError(f"state epoch {state['epoch']} != manifest epoch {manifest['epoch']}")
    return state


def load_newest(fs: Any, trial_path: str) -> Restored:
    """The newest checkpoint of a trial that verifies and loads; never raises."""
    found = Restored()
    cands = _candidates(fs, trial_path)
    for epoch, name, manifest in cands:
        if epoch == -2:
            found.warnings.append(f"checkpoint {trial_path}/{name} skipped: unreadable manifest")
            continue
        try:
            state = _load(fs, f"{trial_path}/{name}", manifest)
        except ValueError as err:
            found.warnings.append(f"checkpoint {trial_path}/{name} skipped: {err}")
            continue
        found.state, found.name, found.epoch = state, name, int(state["epoch"])
        if found.warnings:
            found.warnings.append(
                f"continuing from the newest intact one, {name} (epoch {found.epoch})"
            )
        return found
    if cands:
        found.warnings.append(
            f"no intact checkpoint among {len(cands)} in {trial_path}: the trial restarts from "
            f"epoch 0"
        )
    return found


def remove_unverified(fs: Any, trial_path: str) -> list[str]:
    """Delete checkpoint directories that do not verify (a copy cut off by a full disk), freeing
    their space; return their names. Intact checkpoints are kept."""
    removed = []
    for _, name, manifest in _candidates(fs, trial_path):
        try:
            _load(fs, f"{trial_path}/{name}", manifest)
        except ValueError:
            try:
                fs.delete_dir(f"{trial_path}/{name}")
                removed.append(name)
            except OSError:
                pass
    return removed
