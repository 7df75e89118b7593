"""Nothing of a sweep outlives its launcher: a watchdog process, and cleanup of a dead one's leftovers.

Every process a local sweep starts (Ray's GCS, raylet, agents and workers, wandb-core) inherits
the launcher's environment, where ``SPARSITY_TUNE_LAUNCH=<token>`` names this launch. Ray already
ties its main processes to the driver (``PR_SET_PDEATHSIG`` and its reaper), but not every helper
follows; so the launcher starts :func:`main` (``python -m sparsity_tune.sweep.watchdog TOKEN``)
first, with a pipe from the launcher as its stdin. When the launcher ends, however it ends
(SIGKILL included), the pipe closes, and the watchdog sends SIGTERM, then after ``GRACE_S`` SIGKILL,
to every process of this user whose environment carries the token. It ignores SIGINT/SIGTERM
(Ctrl-C reaches the whole process group) and lives in its own session.

:func:`kill_marked` is also what the next launcher runs for a dead launcher's token (taken from
its stale lock), in case the watchdog itself was killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

ENV = "SPARSITY_TUNE_LAUNCH"
GRACE_S = 3.0
SCAN_GAP_S = 0.2


def marked_pids(token: str, spare: int | None = None) -> list[int]:
    """PIDs of this user's processes whose environment has ``ENV=token``, except this process
    and ``spare`` (the launcher, which may still be running its exit handlers)."""
    needle = f"{ENV}={token}".encode()
    me, uid = os.getpid(), os.getuid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (me, spare):
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(int(name))
    return out


def kill_marked(token: str, grace_s: float = GRACE_S, spare: int | None = None) -> int:
    """SIGTERM every marked process, SIGKILL what is left after ``grace_s``; return how many.

    A process caught in ``execve`` shows an empty environment for a moment (the kernel writes
    the new one after the parent has resumed: 51 of 2,000 reads right after ``Popen`` here), so
    the SIGKILL pass scans twice, ``SCAN_GAP_S`` apart, to catch one missed that way."""
    pids = marked_pids(token, spare)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and marked_pids(token, spare):
        time.sleep(SCAN_GAP_S)
    for _ in range(2):
        for pid in marked_pids(token, spare):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(SCAN_GAP_S)
    return len(pids)


def start(token: str) -> subprocess.Popen:
    """Start the watchdog for ``token``; keep the returned object alive (its stdin is the pipe)."""
    env = {k: v for k, v in os.environ.items() if k != ENV}  # it must not match itself
    return subprocess.Popen(
        [sys.executable, "-m", "sparsity_tune.sweep.watchdog", token, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def main() -> None:
    token, launcher = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass  # the launcher never writes: this returns b"" when it is gone
    kill_marked(token, spare=launcher)


if __name__ == "__main__":
    main()
