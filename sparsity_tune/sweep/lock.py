"""One launcher per experiment: a lock file in the experiment directory, safe on shared storage.

Taking it (:meth:`ExperimentLock.acquire`) is the first write a launcher makes. The recipe is the
one ``open(2)`` gives for NFS: write a unique file (``.launch.lock.<host>.<pid>.<random>``) with
the holder's identity, ``link(2)`` it to ``.launch.lock``, and count the unique file's links (2
means the link happened, even when the server's reply to ``link`` was lost). ``link`` is atomic on
local filesystems and on NFSv2/v3/v4 (it does not rely on ``O_EXCL``), and the lock's content is
complete before the lock exists, so nobody ever reads a half-written holder.

What a holder records: host, boot id, PID, the process's start time (``/proc/PID/stat``; a reused
PID has another), the SLURM job id and restart count, and a token naming the processes it starts.
A lock is stale when its holder is dead:

* same host (host name and boot id equal): the PID is gone or started at another time;
* the same SLURM job at a lower restart count: SLURM runs one instance of a job at a time, so a
  requeued job's previous run is gone;
* another host: the holder refreshes the lock's mtime every ``HEARTBEAT_S`` seconds; a lock not
  refreshed for ``LEASE_S`` seconds (measured against the storage's own clock, from a file
  touched just now, so clocks of different nodes do not matter) is stale.

A stale lock is broken under a short second lock (``.launch.lock.break``), so two launchers that
both find it stale cannot both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCK_NAME = ".launch.lock"
HEARTBEAT_S = 10.0
LEASE_S = 60.0
BREAK_LEASE_S = 30.0  # a breaker that died while breaking


class LockHeld(RuntimeError):
    """Another live launcher holds the experiment; the message names it."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_time(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or None
    when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Holder:
    host: str
    boot_id: str
    pid: int
    start_time: str | None
    started_at: float
    token: str
    slurm_job_id: str | None = None
    slurm_restart_count: int | None = None
    ray_temp_dir: str | None = None

    @classmethod
    def me(cls) -> Holder:
        rc = os.environ.get("SLURM_RESTART_COUNT")
        return cls(
            host=socket.gethostname(),
            boot_id=_boot_id(),
            pid=os.getpid(),
            start_time=process_start_time(os.getpid()),
            started_at=time.time(),
            token=secrets.token_hex(8),
            slurm_job_id=os.environ.get("SLURM_JOB_ID"),
            slurm_restart_count=int(rc) if rc and rc.isdigit() else None,
        )

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        job = f", SLURM job {self.slurm_job_id}" if self.slurm_job_id else ""
        return f"host {self.host}, PID {self.pid}{job}, since {when}"

    def same_host(self) -> bool:
        return self.host == socket.gethostname() and self.boot_id == _boot_id()


def _fs_now(directory: Path) -> float:
    """The storage's clock: the mtime of a file written now (NFS servers set it)."""
    probe = directory / f".clock.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"")
        return probe.stat().st_mtime
    except OSError:
        return time.time()
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text())
        return Holder(**data)
    except (OSError, ValueError, TypeError):
        return None


def stale_reason(path: Path, holder: Holder | None) -> str | None:
    """Why the lock at ``path`` is stale (its holder is dead), or None when it may be alive."""
    if holder is None:
        try:
            age = _fs_now(path.parent) - path.stat().st_mtime
        except OSError:
            return "it vanished"
        return "it is unreadable" if age > LEASE_S else None
    if holder.same_host():
        if not pid_alive(holder.pid):
            return f"PID {holder.pid} is gone"
        if holder.start_time and process_start_time(holder.pid) != holder.start_time:
            return f"PID {holder.pid} is now another process"
        return None
    me = Holder.me()
    if (
        holder.slurm_job_id
        and holder.slurm_job_id == me.slurm_job_id
        and holder.slurm_restart_count is not None
        and me.slurm_restart_count is not None
        and holder.slurm_restart_count < me.slurm_restart_count
    ):
        return f"it is SLURM job {holder.slurm_job_id}'s previous run"
    try:
        age = _fs_now(path.parent) - path.stat().st_mtime
    except OSError:
        return "it vanished"
    if age > LEASE_S:
        return f"no heartbeat for {age:.0f} s (lease {LEASE_S:.0f} s)"
    return None


def _link_acquire(path: Path, content: str) -> bool:
    """The NFS-safe create: unique file, link, count links. True when ``path`` is ours."""
    unique = path.with_name(
        f"{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}"
    )
    fd = os.open(unique, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(unique, path)
        except FileExistsError:
            pass
        except OSError:
            pass  # e.g. the reply was lost on NFS: the link count decides
        return os.stat(unique).st_nlink == 2
    finally:
        with contextlib.suppress(OSError):
            os.unlink(unique)


class ExperimentLock:
    """The lock of one experiment directory (a local or shared filesystem path)."""

    def __init__(self, exp_dir: Path) -> None:
        self.dir = Path(exp_dir)
        self.path = self.dir / LOCK_NAME
        self.holder = Holder.me()
        self.broken: list[tuple[Holder | None, str]] = []  # stale locks we removed, and why
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _content(self) -> str:
        return json.dumps(self.holder.__dict__)

    def acquire(self) -> None:
        """Take the lock or raise LockHeld naming the live holder. Breaks stale locks."""
        for _ in range(5):
            if _link_acquire(self.path, self._content()):
                self._start_heartbeat()
                return
            holder = read_holder(self.path)
            reason = stale_reason(self.path, holder)
            if reason is None:
                raise LockHeld(
                    f"{self.dir} is in use by another launcher ("
                    + (holder.describe() if holder else "holder unreadable")
                    + f"); wait for it to end or stop it. A dead launcher's lock is taken over "
                    f"automatically (same host: at once; another host: {LEASE_S:.0f} s after "
                    f"its last heartbeat)."
                )
            self._break(holder, reason)
        raise LockHeld(f"{self.dir}: could not take the lock (others keep taking it); retry")

    def _break(self, holder: Holder | None, reason: str) -> None:
        brk = self.path.with_name(LOCK_NAME + ".break")
        if not _link_acquire(brk, self._content()):
            try:  # a breaker that died mid-break
                if _fs_now(self.dir) - brk.stat().st_mtime > BREAK_LEASE_S:
                    brk.unlink()
            except OSError:
                pass
            time.sleep(0.2)
            return
        try:
            again = read_holder(self.path)
            if again == holder and stale_reason(self.path, again) is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                self.broken.append((holder, reason))
        finally:
            with contextlib.suppress(OSError):
                brk.unlink()

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(HEARTBEAT_S):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        self._thread = threading.Thread(target=beat, name="experiment-lock", daemon=True)
        self._thread.start()

    def set(self, **fields: Any) -> None:
        """Record more about the holder (e.g. the Ray temp dir), rewriting the lock atomically."""
        for k, v in fields.items():
            setattr(self.holder, k, v)
        tmp = self.path.with_name(f"{LOCK_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        tmp.write_text(self._content())
        os.replace(tmp, self.path)

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        current = read_holder(self.path)
        if current is not None and current.token == self.holder.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> ExperimentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
