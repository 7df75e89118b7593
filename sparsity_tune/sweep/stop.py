"""Why a sweep stops early (a signal, or a full storage) and the one way it stops: Ray Tune's own.

Ray Tune does the heavy lifting: on SIGINT or SIGUSR1 its loop stops the trials, saves the
experiment state one last time and returns. :class:`Stop` routes SIGINT, SIGTERM and SIGUSR1 to
that same path (Python's default for SIGTERM would kill the launcher without saving), remembers
which signal came (the exit status is 128 + its number), prints the command that continues, and
lets the launcher ask for the same stop when the storage is full. :class:`QuietRay` keeps Ray's
misleading lines ("send SIGTERM to skip", "Tuner.restore(...)") and its repeats of a disk error off
the terminal, so a user reads one message.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from typing import Any

#: What the launcher handles: Ctrl-C, preemption / scancel, SLURM's --signal warning.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
#: Text of an error that means the storage is full (errno 28 ENOSPC, 122 EDQUOT, 27 EFBIG).
DISK_FULL = ("No space left", "Errno 28", "Disk quota exceeded", "File too large", "storage full")

log = logging.getLogger("sparsity_tune.launch")


class Stop:
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
        for sig in SIGNALS:
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
            raise Interrupted(signum)

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


class Interrupted(Exception):
    """A signal before Ray Tune's loop started: nothing ran yet; exit at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class QuietRay(logging.Filter):
    """On the handlers of Ray's loggers while a sweep runs: drops Ray's "Stop signal received
    ... send SIGTERM to skip" and "Resume experiment with: Tuner.restore(...)" lines (the launcher
    prints the true ones), and turns Ray's reports of a full disk (a traceback per trial and per
    state sync) into one stop request: the launcher prints one message for all of them."""

    def __init__(self, stop: Stop, exp: str) -> None:
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
        if any(s in text for s in DISK_FULL):
            self.stop.request("storage_full", f"no space left on the storage of {self.exp}")
            return False
        if isinstance(exc, FileNotFoundError) and msg.startswith("Trial") and "checkpoint" in msg:
            # Ray's state came from a backup one snapshot old and names a checkpoint Ray has
            # deleted since; trials restore from their own directories, so nothing is lost.
            log.debug("%s", text)
            return False
        return True


def ray_handlers() -> list[logging.Handler]:
    """Every handler Ray's log records can reach: Ray's loggers' own, the root's, and Python's
    last resort (used when no handler is configured, e.g. ``ray.init(configure_logging=False)``)."""
    found: list[logging.Handler] = list(logging.getLogger().handlers)
    if logging.lastResort is not None:
        found.append(logging.lastResort)
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if name.split(".")[0] == "ray" and isinstance(lg, logging.Logger):
            found += [h for h in lg.handlers if h not in found]
    return found
