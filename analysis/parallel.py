"""Process pools for the CPU-bound parts (reading trial files, drawing PNGs), only where safe.

Forked workers start instantly (no re-import of pandas/matplotlib) but forking a process that
runs other threads can deadlock on a lock held by one of them, so a pool is made only on Linux
and only while this process is single-threaded; otherwise the work runs in-process.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int) -> ProcessPoolExecutor | None:
    """A fork-based pool of ``workers`` processes, or None when one would not be safe/useful."""
    if workers <= 1 or sys.platform != "linux" or threading.active_count() > 1:
        return None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
