"""Run a sweep: ``python -m sparsity_tune.launch SPEC.yaml [--set K=V] [--dry-run] ...``.

The command line resolves into one plan (:mod:`sparsity_tune.sweep.resolve`: the spec, or a W&B
sweep file, validated once) before Ray is touched; bad input exits with status 2
and one message. Ray Tune runs the trials (``tune.Tuner``; ``Tuner.restore`` for ``--resume``),
each trial is :func:`sparsity_tune.sweep.trainable.train_trial`, and W&B runs are written by
:class:`sparsity_tune.sweep.wandb_log.WandbTrialLogger`. At the end a summary table is printed with
the command that analyses the experiment directory.

What keeps an experiment right when a sweep is interrupted, resumed or started twice:

* **One launcher per experiment** (:mod:`sparsity_tune.sweep.lock`), taken before anything else
  is written; a second one exits with status 2 naming the holder.
* **The launch record is the source of truth** (:mod:`sparsity_tune.sweep.state`): the saved
  plan plus where it came from. ``--resume`` runs the plan resolved now only where its results
  equal the saved ones (:meth:`sparsity_tune.sweep.plan.Plan.results`); a spec or ``--set`` that
  changes them is refused with status 2 naming the keys, and runtime settings that differ
  (:meth:`~sparsity_tune.sweep.plan.Plan.runtime`) are logged.
* **Signals save and say so** (:mod:`sparsity_tune.sweep.stop`): SIGINT (Ctrl-C), SIGTERM
  (preemption) and SIGUSR1 (SLURM's warning) all stop the trials, save Ray's state and exit with 128 + the signal's number (130,
  143, 138), printing the exact command that continues. A second Ctrl-C aborts at once; further
  SIGTERM/SIGUSR1 are ignored while saving.
* **A full storage stops the sweep** (:mod:`sparsity_tune.sweep.housekeeping`) with one message
  naming the path and the space needed (status 1); Ray's state is kept whole (a backup) and
  ``--resume`` continues after space is freed.
* **Nothing outlives the launcher** (:mod:`sparsity_tune.sweep.watchdog`), and a local Ray listens
  on 127.0.0.1 only.

Exit status: 0 every trial finished (or was stopped early by ASHA); 1 some trial failed or has
damaged files, or the storage is full; 2 the command was refused (bad input, experiment locked or already there, a
resume that would change results, an untrusted experiment directory); 128 + N interrupted by
signal N (state saved; continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from sparsity_tune import layout, stack
from sparsity_tune.keys import ConfigError, add_set_option
from sparsity_tune.sweep import lock as locking
from sparsity_tune.sweep import state, watchdog
from sparsity_tune.sweep.plan import Plan
from sparsity_tune.sweep.resolve import Request, check_resume, dry_run_plan, request, resume_command
from sparsity_tune.sweep.state import LaunchRecord
from sparsity_tune.sweep.stop import SIGNALS, Interrupted, QuietRay, Stop, ray_handlers
from sparsity_tune.sweep.tuner import build_tuner, wandb_logger

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
#: Seconds the W&B writer may take to finish its runs when the sweep was interrupted (SLURM's
#: KillWait is 30 s by default, and Ray's own stop and state save come first).
WANDB_CLOSE_INTERRUPTED_S = 10.0
#: How a runtime setting that differs on --resume is logged (sweep.plan.Plan.runtime).
RUNTIME_NOTE = "(allowed on resume: a runtime setting, no result depends on it)"

log = logging.getLogger("sparsity_tune.launch")
_KEEPERS: list[Any] = []  # watchdog processes (see sparsity_tune.sweep.watchdog)


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


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _own_wandb_service()
    # A handler that cannot write (W&B's debug.log on a full disk) would print a traceback per
    # log line; the full storage is reported once, by the launcher (sweep.housekeeping).
    logging.raiseExceptions = False
    if args.address is None and "ray" not in sys.modules:
        # A local Ray binds every service to this address; Ray's own switch for "no cluster"
        # (read when ray is imported) makes 127.0.0.1 stay 127.0.0.1 instead of the host's IP.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        req = request(args)
        if (
            not args.dry_run
            and not args.no_wandb
            and req.plan.wandb is not None
            and req.plan.wandb.mode == "online"
        ):
            check_wandb_login()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_REFUSED

    if args.dry_run:
        try:
            plan, changes = dry_run_plan(req, args)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_REFUSED
        for change in changes:
            print(f"note: {change} {RUNTIME_NOTE}")
        print(plan.describe())
        return EXIT_OK
    return Launcher(req, args).main()


def _own_wandb_service() -> None:
    """wandb hands its service (wandb-core) to child processes through WANDB_SERVICE; a launcher
    started by a process that uses W&B would write its runs through the parent's service, which
    outlives the launcher with its runs still open (a resume then finds "run ID ... is in use").
    A launcher starts its own, which ends with it."""
    token = os.environ.get("WANDB_SERVICE", "")
    if token and token.split("-")[1:2] != [str(os.getpid())]:
        os.environ.pop("WANDB_SERVICE")


class Launcher:
    """One invocation: lock, settle the launch record, run Ray Tune, report truthfully."""

    def __init__(self, req: Request, args: argparse.Namespace) -> None:
        self.req, self.args = req, args
        self.lock: Any = None
        self.created_dir = False
        self.stop = Stop()
        self.record: LaunchRecord | None = None
        self.plan: Plan = req.plan  # what runs, resolved once (checked against the record)
        self.use_wandb = not args.no_wandb
        self.ray_state = False  # Ray Tune's state exists in the experiment (set by settle)

    def main(self) -> int:
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
                for gone in state.forget_missing_checkpoints(Path(req.exp)):
                    print(
                        f"note: Ray's state names a deleted checkpoint ({gone}): that trial "
                        f"continues from the newest intact checkpoint in its directory",
                        flush=True,
                    )
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
        who = holder.describe() if holder is not None else "an unreadable holder"
        print(f"note: took over the lock of a launcher that is gone ({who}: {reason})", flush=True)
        if holder is not None and holder.same_host():
            n = watchdog.kill_marked(holder.token)
            if n:
                print(f"note: stopped {n} process(es) the dead launcher left behind", flush=True)

    # ------------------------------------------------------------------ launch record
    def _given_record(self, **extra: Any) -> LaunchRecord:
        """The launch record of this command: its plan (results and runtime settings) and where
        it came from (the spec, ``--set`` values and flags)."""
        req = self.req
        return LaunchRecord(
            spec=req.spec,
            spec_file=req.spec_file,
            overrides=req.overrides,
            name=req.plan.name,
            storage=req.storage,
            address=self.args.address,
            use_wandb=self.use_wandb,
            plan=req.plan.results(),
            runtime=req.plan.runtime(),
            **extra,
        )

    def settle(self) -> None:
        """Read or write the launch record under the lock; refuse what would change results."""
        req, args = self.req, self.args
        exp = req.exp
        record = LaunchRecord.load(Path(exp)) if req.local else None
        ray_state = self.ray_state = _can_restore(exp)
        if not args.resume:
            trials = req.local and (
                any(Path(exp).glob("trial_*"))
                or any(
                    (Path(exp) / f).exists() for f in (layout.ALLOCATION_LOG, layout.STOP_DECISIONS)
                )
            )
            if record is not None and not ray_state and not trials:
                # a launch that stopped before Ray saved anything, any trial started or any
                # decision was logged (a crash, a kill): nothing can be lost by starting afresh
                print(
                    f"note: {exp} holds a launch that never ran a trial; starting it afresh",
                    flush=True,
                )
                record = None
            if record is not None or ray_state or trials:
                raise ConfigError(
                    f"{exp} already holds this experiment; continue it with:\n  "
                    f"{resume_command(exp, args.address, self.use_wandb)}\n"
                    f"or pick another --name (or delete the directory to start over)"
                )
            self.record = self._given_record(
                group_readable=args.group_readable, versions=stack.versions()
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
            record = self._given_record()
            if req.local:
                record.save(Path(exp))
        for change in check_resume(record, req):
            print(f"note: {change} {RUNTIME_NOTE}", flush=True)
        changed = stack.differences(record.versions or {}, stack.versions())
        if changed:
            print(
                f"note: resumed on other package versions than it started with "
                f"({'; '.join(changed)}): trials that continue may differ from an "
                f"uninterrupted run in the last digits",
                flush=True,
            )
        if record.runtime is None and record.use_wandb != self.use_wandb:
            print(
                f"note: W&B {'on' if self.use_wandb else 'off'} now, "
                f"{'on' if record.use_wandb else 'off'} when started (allowed: logging only)",
                flush=True,
            )
        self.record = record

    # ------------------------------------------------------------------ the sweep
    def run(self) -> int:
        print(self.plan.describe(), flush=True)
        return run(
            self.plan,
            # a launcher killed before Ray saved anything leaves only launch.json: start afresh
            resume=self.req_resume and self.ray_state,
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


def write_spec(spec: dict[str, Any], exp: str) -> None:
    """The validated spec (plain data, :func:`state.spec_data`) at the experiment's top
    (layout.SPEC), for analysis and reruns."""
    text = yaml.safe_dump(spec, sort_keys=False)
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


def run(
    plan: Plan,
    *,
    resume: bool = False,
    stop: Stop | None = None,
    token: str | None = None,
) -> int:
    """Run (or resume) the sweep of ``plan``; print the summary; return the exit status (module
    docstring)."""
    from sparsity_tune.sweep.housekeeping import Housekeeping, SweepCallback, backup_tuner_pkl

    exp, address, use_wandb = plan.experiment, plan.address, plan.wandb is not None
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our CLIReporter table
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # only the JSON logger
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    stop = stop or Stop()
    stop.hint = resume_command(exp, address, use_wandb)
    local = "://" not in exp
    import ray

    quiet = QuietRay(stop, exp)
    handlers: list[logging.Handler] = []

    started_here = False
    keeper = None
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS} if main_thread else {}
    stop.install()
    try:
        if not ray.is_initialized() and not address:
            token = token or os.urandom(8).hex()
            os.environ[watchdog.ENV] = token  # inherited by Ray's processes and wandb-core
            keeper = watchdog.start(token)
            _KEEPERS.append(keeper)  # its stdin must stay open as long as this process lives
        started_here = init_ray(address)
        hk = Housekeeping(exp=exp, stop=stop, local=local)
        wb = wandb_logger(plan) if use_wandb else None
        tuner = build_tuner(plan, resume, [SweepCallback(hk), *([wb] if wb else [])])
        if resume and wb is not None and local:
            trials = sorted(p.parent for p in Path(exp).glob(f"*/{layout.CONFIG}"))
            if n := wb.catch_up(trials):
                print(f"note: completing the W&B runs of {n} trial(s) that ended earlier")
        handlers = ray_handlers()
        for h in handlers:
            h.addFilter(quiet)
        if local:
            backup_tuner_pkl(exp)
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
        return _report(plan, grid, stop)
    except Interrupted as intr:
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


def _report(plan: Plan, grid: Any, stop: Stop) -> int:
    """Print the summary and what to do next; return the exit status."""
    from sparsity_tune.sweep.housekeeping import space_needed
    from sparsity_tune.sweep.summary import print_summary

    statuses = print_summary(plan).counts
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
            f"\nerror: the storage is full: {stop.detail}. {space_needed(plan)}. The "
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
    damaged = statuses.get(layout.DAMAGED, 0)
    if damaged:
        print(
            f"{damaged} trial(s) have files that cannot be read (damaged); their results are "
            f"left out of the summary and the analysis: see their directories"
        )
    return EXIT_FAILED if failed or unfinished or damaged else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
