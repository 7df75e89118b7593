"""One W&B run per trial, written from the Ray Tune driver by a ``tune.Callback``, from the trial's files.

Why the driver and not the trial: one wandb-core service serves every trial's run (``reinit=
"create_new"`` keeps several runs open in one process), trial workers never pay wandb's start-up,
and offline runs land in ``<experiment>/wandb`` on the machine that launched the sweep even when
trials run on other nodes.

**What is logged comes from the trial's own files**, read through the storage filesystem: the
run's config is the trial's ``config.json``, its history the lines of ``records.jsonl`` (step =
epoch), its summary ``summary.json``. History is sent up to the trial's newest checkpoint (Ray
calls :meth:`WandbTrialLogger.on_checkpoint`) and in full when the trial completes: epochs after
the last checkpoint may be trained again after a crash, so they are logged only once they can no
longer change. Each run: ``id`` = a stable hash of experiment + trial id, ``resume="allow"`` (a
retried or resumed trial continues its own run), ``group`` = the experiment, ``job_type`` = the
pruning method (names and settings: :mod:`sparsity_tune.wandb_setup`).

**Which steps a run already holds** is read from its offline files with W&B's own reader
(``wandb leet inspect --json``), once per run and launcher session: a launcher killed before
wandb-core flushed loses the steps it had not written, and the next session logs exactly those
again (no marker file that could claim more than the files hold). Fragments of a run that hold
nothing (a launcher killed right after ``wandb.init``) are removed. W&B never blocks an exit for
long: all calls run on one background thread, stats/console capture are off and ``finish_timeout``
bounds the flush.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import shutil
import subprocess
import sys
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ray.tune import Callback

from sparsity_tune import layout, metrics, wandb_setup
from sparsity_tune.keys import flatten
from sparsity_tune.sweep.plan import WandbTarget
from sparsity_tune.wandb_setup import run_id, wandb_settings

log = logging.getLogger(__name__)


@dataclass
class RunFiles:
    """What a run's local files hold, read by W&B's own reader."""

    steps: list[int] = field(default_factory=list)
    finished: bool = False  # its newest fragment ended with exit code 0


def _wandb_cli() -> list[str]:
    beside = Path(sys.executable).with_name("wandb")  # the environment's own CLI first
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("wandb")
    return [found] if found else [sys.executable, "-m", "wandb"]


def read_run_dir(run_dir: Path) -> list[dict[str, Any]]:
    """The records of one run directory, decoded by ``wandb leet inspect --json`` (W&B's reader
    of its transaction log; it stops cleanly at a torn end). RuntimeError when it cannot."""
    proc = subprocess.run(
        [*_wandb_cli(), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wandb leet inspect {run_dir}: {proc.stderr.strip()[-300:]}")
    out = []
    for line in proc.stdout.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def run_dirs(directory: Path, rid: str) -> list[Path]:
    """The local directories (fragments) of run ``rid``, oldest first: ``[offline-]run-<time>-
    <rid>``, or with ``-<n>`` appended (W&B's name when that second's directory exists)."""
    wandb_dir = Path(directory) / "wandb"
    if not wandb_dir.is_dir():
        return []
    name = re.compile(rf"(?:offline-)?run-(\d{{8}}_\d{{6}})-{re.escape(rid)}(?:-(\d+))?")
    found = []
    for p in wandb_dir.glob(f"*run-*-{rid}*"):
        m = name.fullmatch(p.name)
        if m and p.is_dir() and not p.is_symlink():
            found.append(((m.group(1), int(m.group(2) or 0)), p))
    return [p for _, p in sorted(found)]


def scan_run(directory: Path, rid: str, prune_empty: bool = True) -> RunFiles:
    """Steps already in the run's files; fragments that hold nothing are removed."""
    found = RunFiles()
    for d in run_dirs(directory, rid):
        if not any(d.glob("*.wandb")):  # killed before wandb-core created its log
            if prune_empty:
                shutil.rmtree(d, ignore_errors=True)
            continue
        recs = read_run_dir(d)
        steps = [int(r["history"]["step"]["num"]) for r in recs if r.get("type") == "history"]
        exits = [r["exit"].get("exit_code", 0) for r in recs if r.get("type") == "exit"]
        user_summary = any(
            not k.startswith("_")
            for r in recs
            if r.get("type") == "summary"
            for k in (r["summary"].get("update") or {})
        )
        if prune_empty and not steps and not exits and not user_summary:
            shutil.rmtree(d, ignore_errors=True)  # header-only: a launcher killed after init
            continue
        found.steps += steps
        found.finished = bool(exits) and exits[-1] == 0
    return found


def _marker(target: WandbTarget, tid: str) -> Path:
    return Path(target.directory) / "wandb" / f"{run_id(target.experiment, tid)}.finished"


def write_finished_marker(target: WandbTarget, tid: str, steps: int) -> None:
    """Noted after ``run.finish()`` returned (wandb-core has written the run), so it never
    claims more than the run's files hold; lets a resume skip reading finished runs."""
    with contextlib.suppress(OSError):
        _marker(target, tid).parent.mkdir(parents=True, exist_ok=True)
        layout.write_json(_marker(target, tid), {"steps": steps})


def run_is_complete(target: WandbTarget, tid: str, records: int) -> bool:
    """True when this trial's run was finished with all ``records`` steps (by its marker)."""
    try:
        return layout.read_json(_marker(target, tid)).get("steps") == records
    except (OSError, ValueError, AttributeError):
        return False


def _read_text(fs: Any, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as f:
            return f.readall().decode("utf-8", errors="replace")
    except (OSError, FileNotFoundError):
        return None


class WandbTrialLogger(Callback):
    """Ray Tune callback: hands trial events to a background writer thread.

    All W&B calls happen on one background thread fed by a queue, so Tune's event loop never
    waits for ``wandb.init`` (seconds for the first one: it starts wandb-core) or ``finish``:
    trials are scheduled while W&B catches up.
    """

    _live: ClassVar[weakref.WeakSet] = weakref.WeakSet()  # loggers with a writer thread

    def __init__(self, target: WandbTarget) -> None:
        self.target = target
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment
        return {"target": self.target, "_queue": None, "_thread": None}

    # ------------------------------------------------------------------ Tune's side (enqueue)
    def _put(self, item: tuple) -> None:
        if self._thread is None:
            self._queue = queue.Queue()
            self._thread = threading.Thread(
                target=_Writer(self.target, self._queue).loop,
                name="wandb-trial-logger",
                daemon=True,
            )
            self._thread.start()
            WandbTrialLogger._live.add(self)
        assert self._queue is not None
        self._queue.put(item)

    @staticmethod
    def _source(trial: Any) -> tuple[Any, str]:
        return trial.storage.storage_filesystem, trial.path

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        epoch = (trial.last_result or {}).get(metrics.M.epoch)
        if isinstance(epoch, int):
            self._put(("sync", trial.trial_id, self._source(trial), epoch))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._put(("sync", trial.trial_id, self._source(trial), None))
        self._put(("finish", trial.trial_id, self._source(trial), 0))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._put(("finish", trial.trial_id, self._source(trial), 1))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close_all()

    def catch_up(self, trial_dirs: list[Path]) -> int:
        """Complete the runs of trials that ended in an earlier session whose run files lack
        steps (wandb-core killed before it flushed them): Ray will not run those trials again.
        Returns how many runs are caught up (in the background)."""
        import pyarrow.fs

        fs = pyarrow.fs.LocalFileSystem()
        n = 0
        for d in trial_dirs:
            if layout.trial_status(d) not in (layout.FINISHED, layout.STOPPED_EARLY):
                continue
            try:
                tid = layout.read_json(d / layout.CONFIG)["trial_id"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if run_is_complete(self.target, tid, len(layout.read_records(d, warn=False))):
                continue
            self._put(("sync", tid, (fs, str(d)), None))
            self._put(("finish", tid, (fs, str(d)), 0))
            n += 1
        return n

    @classmethod
    def close_every_logger(cls, timeout: float = 120.0) -> None:
        """Flush every logger of this process (also those Tune unpickled for --resume)."""
        for logger in list(cls._live):
            logger.close_all(timeout)

    def close_all(self, timeout: float = 120.0) -> None:
        """Finish every open run and wait for the writer, at most ``timeout`` seconds."""
        if self._thread is None:
            return
        self._put(("stop",))
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "W&B writer still busy after %.0f s; leaving it (the next --resume logs what is "
                "missing from the run files)",
                timeout,
            )
        self._thread = self._queue = None


class _Writer:
    """The background thread's state: open runs and the last step each run holds."""

    def __init__(self, target: WandbTarget, q: queue.Queue) -> None:
        self.t, self.queue = target, q
        self.runs: dict[str, Any] = {}
        self.files: dict[str, RunFiles] = {}  # what earlier sessions left in each run's files
        self.logged: dict[str, int] = {}  # last step each run holds (files + this session)
        self.failed: set[str] = set()  # trials whose W&B calls failed (warned once)
        #: why ``wandb.init`` failed in this session (e.g. wandb-core was killed: SLURM signals
        #: every process of a job, and Go programs take SIGTERM whatever their parent blocks);
        #: no further run is opened then, each attempt would leave an empty fragment. The next
        #: session logs the missing steps from the trial files.
        self.init_failed: BaseException | None = None

    def loop(self) -> None:
        while True:
            item = self.queue.get()
            if item[0] == "stop":
                unclean = False
                for tid in list(self.runs):
                    try:
                        self._close(tid, 1)  # still open: the sweep was interrupted
                    except Exception as err:  # e.g. ENOSPC: wandb's own log file, a full disk
                        unclean = True
                        log.warning(
                            "W&B: run of trial %s not closed cleanly (%s); the next --resume "
                            "logs its missing steps from the trial files",
                            tid,
                            err,
                        )
                if unclean:
                    # a run whose finish failed stays "in use" in this process's W&B service:
                    # end the service with the session, so a resume in this process can open it
                    import wandb

                    with contextlib.suppress(Exception):
                        wandb.teardown(1)
                for tid in self.failed:  # fragments a failed init left hold nothing: remove them
                    with contextlib.suppress(Exception):
                        scan_run(Path(self.t.directory), run_id(self.t.experiment, tid))
                return
            try:
                getattr(self, item[0])(*item[1:])
            except Exception as err:  # never let logging break the sweep; say it once per trial
                level = logging.DEBUG if item[1] in self.failed else logging.WARNING
                self.failed.add(item[1])
                log.log(level, "W&B %s for trial %s failed: %s", item[0], item[1], err)

    def _prior(self, tid: str) -> RunFiles:
        """What the run's files hold; if W&B cannot read them, nothing more is logged to that
        run (better a run that stops than one with every step twice)."""
        if tid not in self.files:
            try:
                self.files[tid] = scan_run(Path(self.t.directory), run_id(self.t.experiment, tid))
                self.logged[tid] = max(self.files[tid].steps, default=0)
            except (RuntimeError, OSError, subprocess.SubprocessError) as err:
                log.warning(
                    "W&B run of trial %s not continued: its files are unreadable (%s)", tid, err
                )
                self.files[tid] = RunFiles(finished=True)
                self.logged[tid] = 1 << 62
        return self.files[tid]

    def _open(self, tid: str, src: tuple[Any, str]) -> Any:
        if tid in self.runs:
            return self.runs[tid]
        if self.init_failed is not None:
            raise RuntimeError(f"W&B is unavailable in this session ({self.init_failed})")
        import wandb

        fs, path = src
        text = _read_text(fs, f"{path}/{layout.CONFIG}")
        if text is None:
            raise FileNotFoundError(f"{path}/{layout.CONFIG}")
        cfg = json.loads(text)
        nested = cfg.get("config") or {}
        wandb_setup.quiet()
        Path(self.t.directory).mkdir(parents=True, exist_ok=True)
        try:
            self.runs[tid] = self._init(wandb, tid, cfg, nested)
        except Exception as err:
            self.init_failed = err
            raise
        return self.runs[tid]

    def _init(self, wandb: Any, tid: str, cfg: dict[str, Any], nested: dict[str, Any]) -> Any:
        return wandb.init(
            project=self.t.project,
            entity=self.t.entity,
            group=wandb_setup.group(self.t.experiment, self.t.group),
            job_type=(nested.get("pruning") or {}).get("method"),
            tags=list(self.t.tags) or None,
            name=wandb_setup.run_name(self.t.experiment, tid),
            id=run_id(self.t.experiment, tid),
            resume="allow",
            dir=self.t.directory,
            mode=self.t.mode,
            reinit="create_new",
            config={
                **flatten(nested),
                "trial_id": tid,
                "experiment": self.t.experiment,
                "seed": cfg.get("seed"),
                "config_id": cfg.get("config_id"),  # the seeds of one configuration share it
            },
            settings=wandb_settings(),
        )

    def sync(self, tid: str, src: tuple[Any, str], upto: int | None) -> None:
        """Log the trial's records up to epoch ``upto`` (all when None) that the run lacks."""
        self._prior(tid)
        text = _read_text(src[0], f"{src[1]}/{layout.RECORDS}") or ""
        todo = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: its epoch comes back with the next sync
            step = rec.get(metrics.M.epoch) if isinstance(rec, dict) else None
            if isinstance(step, int) and step > self.logged[tid] and (upto is None or step <= upto):
                todo.append((step, rec))
        if not todo:
            return
        run = self._open(tid, src)
        for step, rec in sorted(todo, key=lambda sr: sr[0]):
            if step <= self.logged[tid]:
                continue
            row = {
                k: v
                for k, v in rec.items()
                if k in metrics.RECORD_KEYS or k.startswith(metrics.LAYER_SPARSITY_PREFIX)
            }
            run.log(row, step=step)
            self.logged[tid] = step

    def finish(self, tid: str, src: tuple[Any, str], exit_code: int) -> None:
        prior = self._prior(tid)
        if tid not in self.runs and exit_code == 0 and prior.finished:
            write_finished_marker(self.t, tid, self.logged[tid])
            return  # finished in an earlier session and nothing new was logged
        if tid not in self.runs and exit_code != 0:
            return  # nothing was opened for it in this session
        run = self._open(tid, src)
        if exit_code == 0:
            text = _read_text(src[0], f"{src[1]}/{layout.SUMMARY}")
            summary = json.loads(text) if text else {}
            cfg = json.loads(_read_text(src[0], f"{src[1]}/{layout.CONFIG}") or "{}")
            run.summary.update(
                {k: summary[k] for k in metrics.SUMMARY_KEYS if k in summary}
                | {"seed": cfg.get("seed")}
            )
        self._close(tid, exit_code)

    def _close(self, tid: str, exit_code: int) -> None:
        run = self.runs.pop(tid, None)
        if run is not None:
            run.finish(exit_code=exit_code)  # returns once wandb-core has written the run
        if exit_code == 0:
            self._prior(tid).finished = True
            write_finished_marker(self.t, tid, self.logged.get(tid, 0))
