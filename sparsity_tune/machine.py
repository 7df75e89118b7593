"""What this process may use of the machine it runs on: CPUs and free bytes on a filesystem.

One owner for each count: the trainer's threads, the launcher's check of a trial's CPU share and
the analysis's process pools all see the same CPUs (the affinity mask, capped by a cgroup v2
quota: a container or a SLURM step given 2 of 64 CPUs counts 2).
"""

from __future__ import annotations

import os
from pathlib import Path

#: cgroup v2's CPU quota of this process's group: "max PERIOD" or "QUOTA PERIOD" (microseconds).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_allowance() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            n = min(n or 1, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n or 1)


def free_bytes(path: str | Path) -> int | None:
    """Bytes an unprivileged user may still write on the filesystem of ``path``; None when it
    cannot be read (a path that does not exist, a URI)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
