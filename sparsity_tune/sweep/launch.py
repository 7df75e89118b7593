"""Run a sweep: ``python -m sparsity_tune.launch SPEC.yaml [--set K=V] [--dry-run] ...``.

The spec (or a W&B sweep file) is validated before Ray is touched; bad input exits with status 2
and one message. Ray Tune runs the trials (``tune.Tuner``; ``Tuner.restore`` for ``--resume``),
each trial is :func:`sparsity_tune.sweep.trainable.train_trial`, and W&B runs are written by
:class:`sparsity_tune.sweep.wandb_log.WandbTrialLogger`. At the end a summary table is printed with
the command that analyses the experiment directory.

What keeps an experiment right when a sweep is interrupted, resumed or started twice:

* **One launcher per experiment** (:mod:`sparsity_tune.sweep.lock`), taken before anything else
  is written; a second one exits with status 2 naming the holder.
* **The launch record is the source of truth** (:mod:`sparsity_tune.sweep.state`): ``--resume``
  runs what was saved when the experiment started; a spec or ``--set`` that differs in a key
  that can change results is refused with status 2.
* **Signals save and say so**: SIGINT (Ctrl-C), SIGTERM (preemption) and SIGUSR1 (SLURM's
  warning) all stop the trials, save Ray's state and exit with 128 + the signal's number (130,
  143, 138), printing the exact command that continues. A second Ctrl-C aborts at once; further
  SIGTERM/SIGUSR1 are ignored while saving.
* **A full storage stops the sweep** with one message naming the path and the space needed
  (status 1), before Ray's state files can be cut off; ``--resume`` continues after space is freed.
* **Nothing outlives the launcher** (:mod:`sparsity_tune.sweep.watchdog`), and a local Ray listens
  on 127.0.0.1 only.

Exit status: 0 every trial finished (or was stopped early by ASHA); 1 some trial failed, or the
storage is full; 2 the command was refused (bad input, experiment locked or already there, a
resume that would change results, an untrusted experiment directory); 128 + N interrupted by
signal N (state saved; continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparsity_tune import layout
from sparsity_tune.sweep.spec import Spec, load_spec, validate_spec
from sparsity_tune.sweep.state import LaunchRecord
from sparsity_tune.trial.config import ConfigError, add_set_option, parse_overrides, set_dotted

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: Columns of the live table (besides the searched parameters and the seed).
LIVE_METRICS = ("epoch", "val_acc", "test_acc", "sparsity")
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
#: Seconds the W&B writer may take to finish its runs when the sweep was interrupted (SLURM's
#: KillWait is 30 s by default, and Ray's own stop and state save come first).
WANDB_CLOSE_INTERRUPTED_S = 10.0
#: How often the launcher checks the free space of a local storage, and the least it keeps free.
SPACE_CHECK_S = 2.0
MIN_FREE_BYTES = 1 << 20

log = logging.getLogger("sparsity_tune.launch")
_KEEPERS: list[Any] = []  # watchdog processes (see sparsity_tune.sweep.watchdog)
#: What the launcher handles: Ctrl-C, preemption / scancel, SLURM's --signal warning.
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m sparsity_tune.launch",
        description="Run a pruning sweep on Ray Tune (Optuna search, W&B logging).",
    )
    ap.add_argument(
        "spec",
        help="search-space YAML (ours or a W&B sweep file); with --resume also an experiment "
        "directory (then its saved spec is used)",
    )
    add_set_option(ap, "override a spec key, e.g. --set search.num_samples=8 (repeatable)")
    ap.add_argument("--name", help="experiment name (default: the spec's name)")
    ap.add_argument(
        "--storage",
        default="results",
        help="where experiments live: a directory, shared path or URI Ray supports (default results)",
    )
    ap.add_argument("--address", help="join a running Ray cluster: auto or HOST:PORT")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted experiment exactly as it was started",
    )
    ap.add_argument("--no-wandb", action="store_true", help="do not write W&B runs")
    ap.add_argument(
        "--group-readable",
        action="store_true",
        help="create the experiment directory readable by your group (0750); default private (0700)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return ap.parse_args(argv)


def experiment_path(storage: str, name: str) -> str:
    if "://" in storage:
        return storage.rstrip("/") + "/" + name
    return str(Path(storage).expanduser().resolve() / name)


@dataclass
class Request:
    """What this command line asks for, validated (nothing written yet)."""

    spec: Spec
    storage: str
    exp: str
    spec_file: str
    overrides: list[str]
    from_experiment_dir: bool = False  # `launch EXPERIMENT_DIR --resume`

    @property
    def local(self) -> bool:
        return "://" not in self.exp


def _absolute_root(spec: Spec) -> Spec:
    root = Path(spec.dataset.root)
    if root.is_absolute():  # trials run in their own working directory
        return spec
    return spec.model_copy(
        update={"dataset": spec.dataset.model_copy(update={"root": str(root.resolve())})}
    )


def prepare(args: argparse.Namespace) -> tuple[Spec, str, str]:
    """Validate everything that can be checked without Ray; raise ConfigError otherwise."""
    req = request(args)
    return req.spec, req.storage, req.exp


def request(args: argparse.Namespace) -> Request:
    """Validate the command line (no file is written); raise ConfigError otherwise."""
    overrides = parse_overrides(args.overrides)
    given = Path(args.spec).expanduser()
    if given.is_dir():
        if not args.resume:
            raise ConfigError(
                f"{args.spec} is a directory; to continue the experiment in it: "
                f"python -m sparsity_tune.launch {shlex.quote(args.spec)} --resume"
            )
        exp = given.resolve()
        record = LaunchRecord.load(exp)
        if record is None:
            raise ConfigError(
                f"{exp}: no {layout.LAUNCH} (not an experiment directory, or one made by an older "
                f"version): resume it with its spec file, --name and --storage instead"
            )
        if args.name and args.name != exp.name:
            raise ConfigError(f"--name {args.name!r} differs from the experiment's {exp.name!r}")
        data = dict(record.spec)
        for key, value in overrides.items():
            set_dotted(data, key, value)
        spec = validate_spec(data, f"{exp}/{layout.LAUNCH}")
        return Request(
            spec, str(exp.parent), str(exp), record.spec_file, list(args.overrides), True
        )
    spec = load_spec(args.spec, overrides)
    if args.name:
        if not NAME_RE.fullmatch(args.name):
            raise ConfigError(
                f"--name {args.name!r}: use letters, digits and _.+- (it becomes a directory)"
            )
        spec = spec.model_copy(update={"name": args.name})
    if not NAME_RE.fullmatch(spec.name):
        raise ConfigError(f"name={spec.name!r}: use letters, digits and _.+- (a directory name)")
    storage = args.storage if "://" in args.storage else str(Path(args.storage).resolve())
    exp = experiment_path(args.storage, spec.name)
    return Request(_absolute_root(spec), storage, exp, str(given.resolve()), list(args.overrides))


def resume_command(exp: str, address: str | None, use_wandb: bool) -> str:
    """The exact command that continues this experiment (runnable from any directory)."""
    cmd = ["python", "-m", "sparsity_tune.launch", exp, "--resume"]
    if address:
        cmd += ["--address", address]
    if not use_wandb:
        cmd.append("--no-wandb")
    return shlex.join(cmd)


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.address is None and "ray" not in sys.modules:
        # A local Ray binds every service to this address; Ray's own switch for "no cluster"
        # (read when ray is imported) makes 127.0.0.1 stay 127.0.0.1 instead of the host's IP.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        req = request(args)
        if not args.dry_run and not args.no_wandb and req.spec.wandb.mode == "online":
            check_wandb_login()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_REFUSED

    from sparsity_tune.sweep.search import describe_plan

    if args.dry_run:
        print(describe_plan(req.spec, req.exp, args.address))
        print(f"wandb       {'off' if args.no_wandb else req.spec.wandb.mode} → {req.exp}/wandb")
        return EXIT_OK
    return Launcher(req, args).main()


class Launcher:
    """One invocation: lock, settle the launch record, run Ray Tune, report truthfully."""

    def __init__(self, req: Request, args: argparse.Namespace) -> None:
        self.req, self.args = req, args
        self.lock: Any = None
        self.created_dir = False
        self.stop = _Stop()
        self.record: LaunchRecord | None = None
        self.spec: Spec = req.spec
        self.use_wandb = not args.no_wandb
        self.ray_state = False  # Ray Tune's state exists in the experiment (set by settle)

    def main(self) -> int:
        from sparsity_tune.sweep import lock as locking
        from sparsity_tune.sweep import state

        req = self.req
        old_umask = None
        try:
            if req.local:
                exp = Path(req.exp)
                self.created_dir = not exp.exists()
                state.make_experiment_dir(exp, self.args.group_readable)
                # what this launcher (and the local Ray it starts) creates: private, or group-read
                old_umask = os.umask(0o027 if self.args.group_readable else 0o077)
                self.lock = locking.ExperimentLock(exp)
                try:
                    self.lock.acquire()
                except locking.LockHeld as err:
                    self.lock = None
                    raise ConfigError(str(err)) from None
                for holder, reason in self.lock.broken:
                    self._clean_after_dead(holder, reason)
            else:
                log.warning("%s: no lock on URI storage; run one launcher per experiment", req.exp)
            self.settle()
            assert self.record is not None
            umask = os.umask(0o027 if self.record.group_readable else 0o077)
            old_umask = umask if old_umask is None else old_umask
            if req.local and self.req_resume and self.ray_state:
                state.check_trusted(Path(req.exp))
                for fixed in state.repair_ray_state(Path(req.exp)):
                    print(f"note: Ray's state file {fixed}", flush=True)
            return self.run()
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            self._undo_empty_dir()
            return EXIT_REFUSED
        finally:
            if old_umask is not None:
                os.umask(old_umask)
            if self.lock is not None:
                self.lock.release()

    @property
    def req_resume(self) -> bool:
        return bool(self.args.resume)

    def _undo_empty_dir(self) -> None:
        """A refused launch leaves no directory it created."""
        if not (self.created_dir and self.req.local):
            return
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        with contextlib.suppress(OSError):
            Path(self.req.exp).rmdir()

    def _clean_after_dead(self, holder: Any, reason: str) -> None:
        from sparsity_tune.sweep import watchdog

        who = holder.describe() if holder is not None else "an unreadable holder"
        print(f"note: took over the lock of a launcher that is gone ({who}: {reason})", flush=True)
        if holder is not None and holder.same_host():
            n = watchdog.kill_marked(holder.token)
            if n:
                print(f"note: stopped {n} process(es) the dead launcher left behind", flush=True)

    # ------------------------------------------------------------------ launch record
    def settle(self) -> None:
        """Read or write the launch record under the lock; refuse what would change results."""
        from sparsity_tune.sweep import state

        req, args = self.req, self.args
        exp = req.exp
        record = LaunchRecord.load(Path(exp)) if req.local else None
        ray_state = self.ray_state = _can_restore(exp)
        if not args.resume:
            trials = req.local and any(Path(exp).glob("trial_*"))
            if record is not None or ray_state or trials:
                raise ConfigError(
                    f"{exp} already holds this experiment; continue it with:\n  "
                    f"{resume_command(exp, args.address, self.use_wandb)}\n"
                    f"or pick another --name (or delete the directory to start over)"
                )
            self.record = LaunchRecord(
                spec=state.spec_data(req.spec),
                spec_file=req.spec_file,
                overrides=req.overrides,
                name=req.spec.name,
                storage=req.storage,
                address=args.address,
                use_wandb=self.use_wandb,
                group_readable=args.group_readable,
            )
            write_spec(req.spec, exp)
            if req.local:
                self.record.save(Path(exp))
            return
        if record is None and not ray_state:
            raise ConfigError(f"--resume: no experiment to resume at {exp} (run without --resume)")
        if record is None:  # made by a version without launch records: adopt the one given
            print(
                f"note: {exp} has no {layout.LAUNCH} (an older version started it); the spec "
                f"given now is saved as its record",
                flush=True,
            )
            record = LaunchRecord(
                spec=state.spec_data(req.spec),
                spec_file=req.spec_file,
                overrides=req.overrides,
                name=req.spec.name,
                storage=req.storage,
                address=args.address,
                use_wandb=self.use_wandb,
            )
            if req.local:
                record.save(Path(exp))
        diffs = state.resume_differences(record.spec, state.spec_data(req.spec))
        refused = [d for d in diffs if d.allowed_because is None]
        if refused:
            allowed = ", ".join(state.ALLOWED_ON_RESUME)
            raise ConfigError(
                f"--resume: {len(refused)} key(s) differ from how {req.spec.name!r} was started "
                f"and can change results:\n  "
                + "\n  ".join(str(d) for d in refused)
                + f"\nA resumed experiment runs as it was started. Continue it with:\n  "
                f"{resume_command(exp, args.address, self.use_wandb)}\n"
                f"(keys that may change on resume: {allowed}, resources.cpu, and resources.gpu "
                f"while the trials stay on the same kind of device), or start a new experiment "
                f"with another --name."
            )
        data = dict(record.spec)
        for d in diffs:
            print(f"note: {d} (allowed: {d.allowed_because})", flush=True)
            set_dotted(data, d.key, d.given)
        self.spec = validate_spec(data, f"{exp}/{layout.LAUNCH}")
        if record.use_wandb != self.use_wandb:
            print(
                f"note: W&B {'on' if self.use_wandb else 'off'} now, "
                f"{'on' if record.use_wandb else 'off'} when started (allowed: logging only)",
                flush=True,
            )
        self.record = record

    # ------------------------------------------------------------------ the sweep
    def run(self) -> int:
        from sparsity_tune.sweep.search import describe_plan

        print(describe_plan(self.spec, self.req.exp, self.args.address), flush=True)
        return run(
            self.spec,
            self.req.storage,
            self.req.exp,
            address=self.args.address,
            # a launcher killed before Ray saved anything leaves only launch.json: start afresh
            resume=self.req_resume and self.ray_state,
            use_wandb=self.use_wandb and self.spec.wandb.mode != "disabled",
            stop=self.stop,
            token=self.lock.holder.token if self.lock is not None else None,
        )


def _can_restore(exp: str) -> bool:
    from ray.tune import Tuner

    return Tuner.can_restore(exp)


def check_wandb_login() -> None:
    """Online W&B needs a key; say so before Ray starts rather than failing in every trial."""
    import wandb

    try:
        wandb.Api(timeout=10)
    except wandb.errors.UsageError:
        raise ConfigError(
            "wandb.mode=online but no W&B API key is configured: run `wandb login` (or set "
            "WANDB_API_KEY), or use --set wandb.mode=offline and `wandb sync` later, or --no-wandb"
        ) from None


def write_spec(spec: Spec, exp: str) -> None:
    """The resolved spec at the experiment's top (layout.SPEC), for analysis and reruns."""
    text = yaml.safe_dump(spec.model_dump(mode="json", exclude_none=False), sort_keys=False)
    if "://" in exp:
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(exp)
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(f"{path}/{layout.SPEC}") as f:
            f.write(text.encode())
        return
    Path(exp).mkdir(parents=True, exist_ok=True)
    layout.write_text(Path(exp) / layout.SPEC, text)


def init_ray(address: str | None) -> bool:
    """Connect to ``address`` or start a local Ray bound to 127.0.0.1; True when started here."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
        return False
    # Ray counts this machine's CPUs/GPUs (cgroup-aware); no dashboard, loopback only.
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")
    ip = ray.util.get_node_ip_address()
    if ip != "127.0.0.1":
        log.warning("Ray's local services listen on %s, not 127.0.0.1 only", ip)
    return True


def _short(key: str) -> str:
    return key.split(".")[-1]


def reporter(spec: Spec) -> Any:
    from ray.tune import CLIReporter

    keys = [k for k, p in spec.search.parameters.items() if p.distribution != "constant"]
    shorts = [_short(k) for k in keys]
    params = {k: (s if shorts.count(s) == 1 else k) for k, s in zip(keys, shorts, strict=True)}
    cols: dict[str, str] = {}
    if spec.search.algorithm == "optuna":  # the seed is in the config only under grid/random
        cols["train.seed"] = "seed"
    else:
        params["train.seed"] = "seed"
    cols.update({m: m for m in LIVE_METRICS})
    for m in spec.search.objectives:
        cols.setdefault(m, m)
    return CLIReporter(
        metric_columns=cols,
        parameter_columns=params,
        max_progress_rows=16,
        max_report_frequency=30,
        print_intermediate_tables=True,
        max_column_length=14,
    )


# ----------------------------------------------------------------------------- signals
class _Stop:
    """Why the sweep stops early: a signal, or a full storage. One owner for both."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.reason: str | None = None  # "signal" | "storage_full"
        self.detail: str = ""
        self._ray_handler: Any = None  # Ray Tune's "stop and save" handler, once fit() runs
        self._pending = False  # a stop requested off the main thread, not yet delivered
        self.hint = ""

    @property
    def stopping(self) -> bool:
        return self.reason is not None

    def install(self) -> None:
        """Route SIGINT, SIGTERM and SIGUSR1 here (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            signal.signal(sig, self._on_signal)

    def attach_ray(self) -> None:
        """Called once Ray Tune has installed its handler (it saves the state, then returns)."""
        if threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(signal.SIGUSR1)
        if callable(handler) and handler is not self._on_signal:
            self._ray_handler = handler
        self.install()
        self.deliver()  # asked to stop before Ray was listening

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: abort without waiting
            print(f"\n{name} again: already saving the sweep's state", file=sys.stderr, flush=True)
            return
        self.signum, self.reason = signum, "signal"
        print(
            f"\n{name} received: stopping the trials and saving the sweep's state; then it "
            f"exits with status {128 + signum}. Continue later with:\n  {self.hint}",
            file=sys.stderr,
            flush=True,
        )
        if self._ray_handler is not None:
            self._ray_handler(signum, frame)
        else:
            raise _Interrupted(signum)

    def request(self, reason: str, detail: str) -> None:
        """Stop the sweep as if SIGUSR1 came. From another thread it is only noted, and Tune's
        loop delivers it at its next step (:meth:`deliver`)."""
        if self.reason is not None:
            return
        self.reason, self.detail = reason, detail
        if reason == "storage_full":
            print(
                f"\nnote: {detail}; stopping the trials and saving what fits",
                file=sys.stderr,
                flush=True,
            )
        self._pending = True
        self.deliver()

    def deliver(self) -> None:
        if not self._pending or self._ray_handler is None:
            return
        if threading.current_thread() is threading.main_thread():
            self._pending = False
            self._ray_handler(signal.SIGUSR1, None)


class _Interrupted(Exception):
    """A signal before Ray Tune's loop started: nothing ran yet; exit at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Text of an error that means the storage is full (errno 28 ENOSPC, 122 EDQUOT, 27 EFBIG).
_DISK_FULL = ("No space left", "Errno 28", "Disk quota exceeded", "File too large", "storage full")


class _QuietRay(logging.Filter):
    """On the handlers of Ray's loggers while a sweep runs: drops Ray's "Stop signal received
    ... send SIGTERM to skip" and "Resume experiment with: Tuner.restore(...)" lines (the launcher
    prints the true ones), and turns Ray's reports of a full disk (a traceback per trial and per
    state sync) into one stop request: the launcher prints one message for all of them."""

    def __init__(self, stop: _Stop, exp: str) -> None:
        super().__init__()
        self.stop, self.exp = stop, exp

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg.startswith(("Stop signal received", "Experiment has been interrupted")):
            return False
        if self.stop.stopping and msg.startswith("Trials did not complete"):
            return False  # the launcher says which trials continue, and how
        text = msg
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text += "".join(traceback.format_exception(*record.exc_info))
        if any(s in text for s in _DISK_FULL):
            self.stop.request("storage_full", f"no space left on the storage of {self.exp}")
            return False
        if isinstance(exc, FileNotFoundError) and msg.startswith("Trial") and "checkpoint" in msg:
            # Ray's state came from a backup one snapshot old and names a checkpoint Ray has
            # deleted since; trials restore from their own directories, so nothing is lost.
            log.debug("%s", text)
            return False
        return True


# ----------------------------------------------------------------------------- launcher callback
@dataclass
class _Housekeeping:
    """Launcher-side trial bookkeeping (a Ray Tune callback's state)."""

    exp: str
    stop: _Stop
    local: bool
    ckpt_bytes: int = 0
    state_bytes: int = 0
    _last_space: float = 0.0
    _backed_up: float = 0.0
    _live: set = field(default_factory=set)


def _callback_class() -> type:
    from ray.tune import Callback

    class SweepCallback(Callback):
        """Installs the signal routing, writes ``stopped.txt`` when the scheduler stops a trial,
        removes a finished trial's stale error files, backs Ray's state up, and stops the sweep
        when the storage is full."""

        def __init__(self, hk: _Housekeeping) -> None:
            self.hk = hk

        def __getstate__(self) -> dict[str, Any]:
            return {}  # rebuilt by every launcher; nothing of it belongs in tuner.pkl

        def setup(self, **info: Any) -> None:
            if getattr(self, "hk", None) is not None:
                self.hk.stop.attach_ray()

        # -- trial files
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.hk._live.add(trial.trial_id)

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            # `done` without the summary's keys: the scheduler (ASHA) stopped it early
            from sparsity_tune.metrics import M

            if result.get("done") and M.best_val_acc not in result:
                _write_trial_file(
                    trial,
                    layout.STOPPED,
                    f"stopped early by the scheduler after epoch {result.get(M.epoch)}\n",
                )

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.hk._live.discard(trial.trial_id)
            if _trial_has_summary(trial):  # a finish supersedes earlier attempts' error files
                for name in (layout.ERROR, "error.pkl"):
                    if trial.local_path:
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(trial.local_path, name))
                    _delete_trial_file(trial, name)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.hk._live.discard(trial.trial_id)
            self._check_storage_error(trial)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._check_storage_error(trial)

        def _check_storage_error(self, trial: Any) -> None:
            from sparsity_tune.sweep.trainable import STORAGE_FULL

            text = ""
            for path in (trial.error_file,):
                if path:
                    with contextlib.suppress(OSError):
                        text += Path(path).read_text(errors="replace")
            if STORAGE_FULL in text or any(s in text for s in _DISK_FULL):
                self.hk.stop.request(
                    "storage_full", f"trial {trial.trial_id} found no space left on {self.hk.exp}"
                )
                # Ray would copy its long error files over the trial's own error.txt (which says
                # what happened and what to do), and on a full disk cut them off: keep the trial's.
                for name in (layout.ERROR, "error.pkl"):
                    if trial.local_path:
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(trial.local_path, name))

        def on_checkpoint(
            self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
        ) -> None:
            from sparsity_tune.sweep.checkpoints import MANIFEST_FILE

            with contextlib.suppress(Exception):
                fs, path = checkpoint.filesystem, checkpoint.path
                with fs.open_input_stream(f"{path}/{MANIFEST_FILE}") as f:
                    import json

                    self.hk.ckpt_bytes = max(self.hk.ckpt_bytes, json.loads(f.readall())["bytes"])

        # -- every turn of Tune's loop: back up Ray's state, watch the free space
        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            hk = self.hk
            hk.stop.deliver()
            if not hk.local or not trials:
                return
            self._backup(trials)
            now = time.monotonic()
            if now - hk._last_space < SPACE_CHECK_S or hk.stop.stopping:
                return
            hk._last_space = now
            free = _free_bytes(hk.exp)
            need = self.reserve()
            if free is not None and free < need:
                hk.stop.request(
                    "storage_full",
                    f"{free / 2**20:.1f} MiB free on the storage of {hk.exp}, below the "
                    f"{need / 2**20:.1f} MiB the sweep keeps in reserve",
                )

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            if self.hk.local and trials:  # after Ray's last save: the newest snapshot
                self.hk._backed_up = 0.0
                self._backup(trials)

        def reserve(self) -> int:
            hk = self.hk
            live = max(1, len(hk._live))
            return max(MIN_FREE_BYTES, 2 * hk.state_bytes + live * 2 * hk.ckpt_bytes)

        def _backup(self, trials: list) -> None:
            from sparsity_tune.sweep import state

            staging = Path(trials[0].storage.experiment_driver_staging_path)
            files = state.ray_state_files(staging)
            newest = max((p.stat().st_mtime for p in files), default=0.0)
            if newest <= self.hk._backed_up:
                return
            try:
                if state.backup_ray_state(staging, Path(self.hk.exp)):
                    self.hk._backed_up = newest
                    self.hk.state_bytes = sum(p.stat().st_size for p in files)
            except OSError as err:
                log.debug("backup of Ray's state failed: %s", err)

    return SweepCallback


def _free_bytes(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _trial_has_summary(trial: Any) -> bool:
    try:
        info = trial.storage.storage_filesystem.get_file_info(f"{trial.path}/{layout.SUMMARY}")
    except OSError:
        return False
    import pyarrow.fs

    return info.type == pyarrow.fs.FileType.File


def _write_trial_file(trial: Any, name: str, text: str) -> None:
    import pyarrow.fs

    fs = trial.storage.storage_filesystem
    with contextlib.suppress(OSError):
        if isinstance(fs, pyarrow.fs.LocalFileSystem):
            layout.write_text(Path(trial.path) / name, text)
        else:
            with fs.open_output_stream(f"{trial.path}/{name}") as f:
                f.write(text.encode())


def _delete_trial_file(trial: Any, name: str) -> None:
    with contextlib.suppress(OSError):
        trial.storage.storage_filesystem.delete_file(f"{trial.path}/{name}")


# ----------------------------------------------------------------------------- Tuner
def build_tuner(
    spec: Spec, storage: str, exp: str, resume: bool, use_wandb: bool, extra: list[Any]
) -> Any:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from sparsity_tune.sweep import search
    from sparsity_tune.sweep.trainable import train_trial

    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial,
            base=spec.base_dict(),
            experiment=spec.name,
            seeds=list(spec.search.seeds),
            cpus=spec.resources.cpu,
            checkpoint_every=spec.search.checkpoint_every,
        ),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    callbacks: list[Any] = [JsonLoggerCallback(), *extra]
    if use_wandb:
        from sparsity_tune.sweep.wandb_log import WandbTarget, WandbTrialLogger

        w = spec.wandb
        callbacks.append(
            WandbTrialLogger(
                WandbTarget(
                    experiment=spec.name,
                    directory=exp if "://" not in exp else str(Path("wandb").resolve()),
                    project=w.project,
                    entity=w.entity,
                    group=w.group,
                    tags=tuple(w.tags),
                    mode=w.mode,
                )
            )
        )
    failure = tune.FailureConfig(max_failures=spec.search.max_failures)
    if resume:
        tuner = tune.Tuner.restore(
            exp,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=search.param_space(spec),
        )
        # Ray restores the run config pickled when the experiment started; this launch's
        # callbacks, reporter and retries replace it. Ray has no public setter for it
        # (ray-project/ray#41364), hence the private handle.
        rc = tuner._local_tuner.get_run_config()
        rc.callbacks, rc.progress_reporter, rc.failure_config = callbacks, reporter(spec), failure
        return tuner
    return tune.Tuner(
        trainable,
        param_space=search.param_space(spec),
        tune_config=search.tune_config(spec),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=storage,
            failure_config=failure,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            progress_reporter=reporter(spec),
            callbacks=callbacks,
            verbose=1,
        ),
    )


def run(
    spec: Spec,
    storage: str,
    exp: str,
    *,
    address: str | None = None,
    resume: bool = False,
    use_wandb: bool = True,
    stop: _Stop | None = None,
    token: str | None = None,
) -> int:
    """Run (or resume) the sweep; print the summary; return the exit status (module docstring)."""
    from sparsity_tune.sweep import watchdog

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our CLIReporter table
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # only the JSON logger
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    stop = stop or _Stop()
    stop.hint = resume_command(exp, address, use_wandb)
    local = "://" not in exp
    import ray

    quiet = _QuietRay(stop, exp)
    handlers: list[logging.Handler] = []

    started_here = False
    keeper = None
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS} if main_thread else {}
    stop.install()
    try:
        if not ray.is_initialized() and not address:
            token = token or os.urandom(8).hex()
            os.environ[watchdog.ENV] = token  # inherited by Ray's processes and wandb-core
            keeper = watchdog.start(token)
            _KEEPERS.append(keeper)  # its stdin must stay open as long as this process lives
        started_here = init_ray(address)
        hk = _Housekeeping(exp=exp, stop=stop, local=local)
        tuner = build_tuner(spec, storage, exp, resume, use_wandb, [_callback_class()(hk)])
        handlers = _ray_handlers()
        for h in handlers:
            h.addFilter(quiet)
        if local:
            _backup_tuner_pkl(exp)
        grid = None
        try:
            grid = tuner.fit()
        except Exception:
            if not stop.stopping:
                raise
            # Ray builds its result grid from files a full disk may have cut off (error.pkl);
            # the sweep has stopped and saved its state already: report from the trial files.
            log.debug("Ray's result grid after the stop", exc_info=True)
        except KeyboardInterrupt:
            print(
                "\naborted by a second Ctrl-C: --resume continues from the state saved last:\n  "
                + stop.hint,
                file=sys.stderr,
            )
            return 128 + signal.SIGINT
        finally:
            if use_wandb:
                from sparsity_tune.sweep.wandb_log import WandbTrialLogger

                WandbTrialLogger.close_every_logger(
                    WANDB_CLOSE_INTERRUPTED_S if stop.stopping else 120.0
                )
        return _report(spec, exp, grid, stop)
    except _Interrupted as intr:
        print(f"interrupted before the sweep started; continue with:\n  {stop.hint}")
        return 128 + intr.signum
    finally:
        for h in handlers:
            h.removeFilter(quiet)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_here:
            ray.shutdown()
        if keeper is not None:
            os.environ.pop(watchdog.ENV, None)


def _ray_handlers() -> list[logging.Handler]:
    """Every handler Ray's log records can reach: Ray's loggers' own, the root's, and Python's
    last resort (used when no handler is configured, e.g. ``ray.init(configure_logging=False)``)."""
    found: list[logging.Handler] = list(logging.getLogger().handlers)
    if logging.lastResort is not None:
        found.append(logging.lastResort)
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if name.split(".")[0] == "ray" and isinstance(lg, logging.Logger):
            found += [h for h in lg.handlers if h not in found]
    return found


def _backup_tuner_pkl(exp: str) -> None:
    from sparsity_tune.sweep import state

    with contextlib.suppress(OSError):
        src = Path(exp) / "tuner.pkl"
        if state.is_intact(src):
            dest = Path(exp) / state.BACKUP_DIR
            dest.mkdir(exist_ok=True)
            tmp = dest / ".tuner.pkl.tmp"
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, dest / "tuner.pkl")


def _report(spec: Spec, exp: str, grid: Any, stop: _Stop) -> int:
    """Print the summary and what to do next; return the exit status."""
    from sparsity_tune.sweep.summary import print_summary, trials_frame

    print_summary(spec, exp)
    statuses = trials_frame(exp)["status"].value_counts().to_dict() if "://" not in exp else {}
    if stop.reason == "signal" and stop.signum is not None:
        name = signal.Signals(stop.signum).name
        print(
            f"\ninterrupted by {name}: the sweep's state is saved "
            f"({statuses.get(layout.RUNNING, 0)} trial(s) unfinished). Continue with:\n  "
            f"{stop.hint}"
        )
        return 128 + stop.signum
    if stop.reason == "storage_full":
        print(
            f"\nerror: the storage is full: {stop.detail}. {_space_needed(spec, exp)}. The "
            f"sweep stopped and saved what fitted. Free space on that filesystem, then continue "
            f"with:\n  {stop.hint}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    failed = statuses.get(layout.FAILED, 0)
    unfinished = statuses.get(layout.RUNNING, 0)
    if grid is not None:
        unfinished = max(unfinished, len(grid) - grid.num_terminated - grid.num_errors)
    if unfinished:
        print(f"{unfinished} trial(s) did not finish; continue with:\n  {stop.hint}")
    if failed:
        print(
            f"{failed} trial(s) failed; see error.txt in their directories, then retry them "
            f"with:\n  {stop.hint}"
        )
    return EXIT_FAILED if failed or unfinished else EXIT_OK


def _space_needed(spec: Spec, exp: str) -> str:
    """An estimate of the space the rest of the sweep needs, from what its trials wrote."""
    from sparsity_tune.sweep import checkpoints

    root = Path(exp)
    ckpt, rec, todo = 0, 0, 0
    for d in root.glob("trial_*"):
        for m in d.glob(f"{checkpoints.CHECKPOINT_PREFIX}*/{checkpoints.MANIFEST_FILE}"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                ckpt = max(ckpt, int(layout.read_json(m)["bytes"]))
        with contextlib.suppress(OSError):
            n = len(layout.read_records(d, warn=False))
            if n:
                rec = max(rec, (d / layout.RECORDS).stat().st_size // n)
        if layout.trial_status(d) != layout.FINISHED:
            todo += 1
    todo = max(todo, spec.search.trial_count() - sum(1 for _ in root.glob("trial_*")) + todo)
    need = todo * (3 * ckpt + spec.train.epochs * rec) + (1 << 20)
    return (
        f"about {need / 2**20:.1f} MiB more are needed for {todo} unfinished trial(s) "
        f"(checkpoints of {ckpt / 2**20:.2f} MiB, three kept while writing, and records)"
    )


if __name__ == "__main__":
    sys.exit(main())
