"""What an experiment directory keeps for ``--resume``, and the checks before any of it is trusted.

* **The launch record** (``launch.json``, written once, atomically, before Ray starts): the saved
  plan (:meth:`~sparsity_tune.sweep.plan.Plan.results` and
  :meth:`~sparsity_tune.sweep.plan.Plan.runtime`) plus where it came from: the validated spec,
  the spec file and ``--set`` values, and the command-line settings. ``--resume`` compares the
  plan it resolves with it (:func:`sparsity_tune.sweep.resolve.check_resume`).
* **Trust** (:func:`check_trusted`): Ray Tune's state (``tuner.pkl``, ``experiment_state-*.json``
  and the searcher's state) are pickles, so they are loaded only from a directory the current
  user owns and nobody else can write, and from files that are the user's, not links.
* **Private directories** (:func:`make_experiment_dir`): an experiment directory is created
  ``0700`` (``0750`` with ``--group-readable``, for a group that reads results; never writable by
  others).
* **Ray's state, untorn** (:func:`backup_ray_state`, :func:`repair_ray_state`): Ray copies its
  state files into the experiment directory in place, so a full disk can cut one off. The launcher
  keeps an atomic copy of each complete snapshot (``.ray-state/``) and, before resuming, puts it
  back over any state file that no longer parses (JSON, or pickle structure read with
  :mod:`pickletools`, which executes nothing). A backup can be older than Ray's deletion of old
  checkpoints (``num_to_keep``): :func:`forget_missing_checkpoints` then drops Ray's reference.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import pickletools
import shutil
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparsity_tune import layout
from sparsity_tune.keys import ConfigError

RECORD_VERSION = 1
BACKUP_DIR = ".ray-state"
#: Files of Ray Tune's experiment state at the top of an experiment directory (all may hold
#: pickles, whatever their extension).
RAY_STATE_PATTERNS = ("tuner.pkl", "experiment_state-*.json", "*-state-*.json", "*-state-*.pkl")


def spec_data(spec: Any) -> dict[str, Any]:
    """A validated Spec as plain data, ``name`` first: every key that has a value (None means
    "the default", and ``value: null`` would read back as a given value)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    return {k: data[k] for k in ("name", *data) if k in data}


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


@dataclass
class LaunchRecord:
    """The saved plan plus where it came from (``launch.json``): what the launcher resolved when
    the experiment started. The spec is what the user wrote, the plan what runs; this record is
    what a ``--resume`` must match."""

    spec: dict[str, Any]  # the validated spec, every key (Spec.model_dump(mode="json"))
    spec_file: str  # absolute path of the spec file it came from
    overrides: list[str]  # the --set KEY=VALUE strings, as given
    name: str
    storage: str
    address: str | None = None
    use_wandb: bool = True
    group_readable: bool = False
    #: what decided the trials' results (sparsity_tune.sweep.plan.Plan.results); None in
    #: records of versions before it was saved
    plan: dict[str, Any] | None = None
    #: the settings that may change on resume (Plan.runtime) as they were; None in records of
    #: versions before it was saved
    runtime: dict[str, Any] | None = None
    #: the package versions it started with (sparsity_tune.stack.versions); None in older records
    versions: dict[str, str] | None = None
    created_at: float = field(default_factory=time.time)
    version: int = RECORD_VERSION

    def save(self, exp: Path) -> None:
        layout.write_json(Path(exp) / layout.LAUNCH, asdict(self))

    @classmethod
    def load(cls, exp: Path) -> LaunchRecord | None:
        path = Path(exp) / layout.LAUNCH
        if not path.exists():
            return None
        try:
            data = layout.read_json(path)
            record = cls(**data)
            record.spec = _drop_none(record.spec)
            return record
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(
                f"{path}: unreadable launch record ({err}); it is written once when the "
                f"experiment starts, so restore it from a backup or start a new experiment"
            ) from None


# ----------------------------------------------------------------------------- trust
def check_trusted(exp: Path) -> None:
    """Refuse (ConfigError) to load Ray's pickled state unless the experiment directory, its trial
    directories and every state or pickle file in them are the user's, are no symbolic links, and
    nobody else can write them."""
    exp = Path(exp)
    problems: list[str] = []

    def check(path: Path, what: str) -> bool:
        try:
            st = os.lstat(path)
        except OSError as err:
            problems.append(f"{path}: unreadable ({err})")
            return False
        if stat.S_ISLNK(st.st_mode):
            problems.append(f"{path}: is a symbolic link")
            return False
        if st.st_uid != os.getuid():
            problems.append(
                f"{path}: {what} belongs to uid {st.st_uid}, not to you ({os.getuid()})"
            )
            return False
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = " and ".join(
                w
                for w, bit in (("its group", stat.S_IWGRP), ("others", stat.S_IWOTH))
                if st.st_mode & bit
            )
            problems.append(f"{path}: {what} is writable by {who} ({stat.filemode(st.st_mode)})")
            return False
        return True

    if check(exp, "the experiment directory"):
        for entry in sorted(os.scandir(exp), key=lambda e: e.name):
            path = Path(entry.path)
            if any(fnmatch.fnmatch(entry.name, pat) for pat in RAY_STATE_PATTERNS):
                check(path, "Ray's state file")
            elif entry.name.startswith("trial_") and check(path, "a trial directory"):
                for pkl in path.glob("*.pkl"):
                    check(pkl, "a pickle Ray loads")
    if problems:
        raise ConfigError(
            "refusing to load Ray's saved state (it is pickled: loading it can run code):\n  "
            + "\n  ".join(problems[:10])
            + "\nResume only an experiment directory that you own and nobody else can write "
            "(chmod -R go-w DIR), or copy the results into a directory of your own to analyse them."
        )


# ----------------------------------------------------------------------------- private dirs
def make_experiment_dir(exp: Path, group_readable: bool) -> None:
    """Create the experiment directory (and missing parents) private to the user: 0700, or 0750
    for a group that reads results. An existing directory keeps its mode."""
    exp = Path(exp)
    exp.parent.mkdir(parents=True, exist_ok=True)
    try:
        exp.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(exp, 0o750 if group_readable else 0o700)


# ----------------------------------------------------------------------------- Ray's state
def is_intact(path: Path) -> bool:
    """True when a Ray state file parses completely: JSON, or a whole pickle stream (its opcodes
    are walked by :mod:`pickletools`; nothing is executed)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    if not data:
        return False
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        json.loads(data)
        return True
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return False
    return bool(ops) and ops[-1][0].name == "STOP" and ops[-1][2] + 1 == len(data)


def ray_state_files(directory: Path) -> list[Path]:
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(
        p
        for p in d.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in RAY_STATE_PATTERNS)
    )


def backup_ray_state(source: Path, exp: Path) -> bool:
    """Copy the complete state files in ``source`` (Ray's staging directory, or the experiment
    directory) into ``exp/.ray-state/``, each atomically. False when some file did not parse
    (a snapshot in the middle of being written: try again later)."""
    files = ray_state_files(source)
    if not files or not all(is_intact(p) for p in files):
        return False
    dest = Path(exp) / BACKUP_DIR
    dest.mkdir(exist_ok=True)
    for p in files:
        data = p.read_bytes()
        tmp = dest / f".{p.name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest / p.name)
    return True


def repair_ray_state(exp: Path) -> list[str]:
    """Put the backup copy back over every state file in ``exp`` that does not parse; return
    what was repaired (``name (from backup)`` or ``name (no backup: removed)``)."""
    exp = Path(exp)
    backup = exp / BACKUP_DIR
    fixed = []
    for p in ray_state_files(exp):
        if is_intact(p):
            continue
        src = backup / p.name
        if src.is_file() and is_intact(src):
            tmp = exp / f".{p.name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, p)
            fixed.append(f"{p.name} (from backup)")
        else:
            p.unlink()  # Ray then resumes from the newest intact state file
            fixed.append(f"{p.name} (torn, no backup: removed)")
    for src in ray_state_files(backup):
        if not (exp / src.name).exists() and is_intact(src):
            tmp = exp / f".{src.name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, exp / src.name)
            fixed.append(f"{src.name} (missing: from backup)")
    return fixed


def forget_missing_checkpoints(exp: Path) -> list[str]:
    """Drop Ray's reference to a trial checkpoint that no longer exists; return what was dropped
    (``trial_dir/checkpoint_N``).

    Ray refuses to restore a trial whose recorded checkpoint is gone ("Could not recover from
    checkpoint as it does not exist on storage anymore") and fails it ``max_failures`` times. Its
    state names a deleted checkpoint when the state is a backup taken before Ray deleted old
    checkpoints (``num_to_keep``; a full disk stops later backups). Ray's reference is only a
    formality here: a trial continues from the newest intact checkpoint in its own directory
    (:mod:`sparsity_tune.sweep.trainable`), so without one Ray restarts the trial and the
    trainable resumes from its files. Call after :func:`check_trusted` (this unpickles Ray's
    run metadata, as Ray itself does on restore). It reads Ray's own private classes, so a Ray
    that changes them is caught by ``tests/unit/test_resume_state.py`` (an entry of a shape it
    cannot read is left to Ray).
    """
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.storage import _exists_at_fs_path
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    forgotten: list[str] = []
    for path in ray_state_files(Path(exp)):
        if not fnmatch.fnmatch(path.name, "experiment_state-*.json") or not is_intact(path):
            continue
        data = json.loads(path.read_text())
        changed = False
        for entry in data.get("trial_data", []):
            try:
                meta = _TrainingRunMetadata.from_json_state(entry[1])
                manager = meta.checkpoint_manager
                latest = manager.latest_checkpoint_result if manager is not None else None
                ckpt = latest.checkpoint if latest is not None else None
                if ckpt is None or _exists_at_fs_path(ckpt.filesystem, ckpt.path):
                    continue
            except Exception:  # a shape this Ray does not write: leave the entry to Ray
                continue
            meta.checkpoint_manager = _CheckpointManager(manager.checkpoint_config)
            entry[1] = meta.get_json_state()
            forgotten.append(f"{Path(ckpt.path).parent.name}/{Path(ckpt.path).name}")
            changed = True
        if changed:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
    return forgotten
