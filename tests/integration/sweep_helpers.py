"""Helpers shared by the sweep integration tests: tiny specs, trial files, W&B offline runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from sparsity_tune import layout


def tiny_spec(path: Path, data_root: Path, name: str, search: dict[str, Any], **top: Any) -> Path:
    """A spec whose trials take a second or two: 600 MNIST-1D samples, a 32-unit MLP, 3 epochs."""
    spec = {
        "name": name,
        "dataset": {
            "name": "mnist1d",
            "root": str(data_root),
            "train_limit": 600,
            "test_limit": 300,
        },
        "model": {"arch": "mlp", "depth": 1, "width": 32},
        "train": {"epochs": 3, "batch_size": 100, "lr": 0.01},
        "pruning": {"method": "gradual", "final_sparsity": 0.5, "end_epoch": 2},
        "search": search,
        "resources": {"cpu": 1},
        "wandb": {"project": "it", "mode": "offline"},
        **top,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def trial_dirs(exp: Path) -> list[Path]:
    return sorted(p.parent for p in exp.glob(f"*/{layout.CONFIG}"))


def trial_files(d: Path) -> tuple[dict, list[dict], dict | None]:
    summary = d / layout.SUMMARY
    return (
        layout.read_json(d / layout.CONFIG),
        layout.read_records(d),
        layout.read_json(summary) if summary.exists() else None,
    )


#: How many ``wandb leet inspect`` processes read fragments at once: each spends ~1 s mostly
#: starting up (Python, then W&B's Go reader), so a sweep's dozen fragments need not queue.
READERS = 4


def wandb_records(run_dir: Path) -> list[dict]:
    """All records of one offline run, read by W&B's own reader (``wandb leet inspect --json``)."""
    out = subprocess.run(
        ["wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wandb_runs(exp: Path) -> dict[str, list[dict]]:
    """run id → its offline fragments (a resumed run has several), each a dict with the run's
    header record, the history rows, the last summary and the exit code."""
    runs: dict[str, list[dict]] = {}
    run_dirs = sorted((exp / "wandb").glob("offline-run-*"))
    with ThreadPoolExecutor(READERS) as pool:  # one reader process per fragment, a few at once
        all_recs = list(pool.map(wandb_records, run_dirs))
    for run_dir, recs in zip(run_dirs, all_recs, strict=True):
        run = next((r["run"] for r in recs if r["type"] == "run"), None)
        assert run is not None, f"{run_dir}: a W&B run fragment without its run record"
        assert any(r["type"] in ("history", "exit") for r in recs), f"{run_dir}: holds no data"
        history = [r["history"]["item"] for r in recs if r["type"] == "history"]
        summary: dict[str, Any] = {}
        for r in recs:
            if r["type"] == "summary":
                summary.update(r["summary"].get("update") or {})
        exit_code = next((r["exit"].get("exit_code", 0) for r in recs if r["type"] == "exit"), None)
        frag = {"run": run, "history": history, "summary": summary, "exit_code": exit_code}
        runs.setdefault(run["run_id"], []).append(frag)
    return runs


# --------------------------------------------------------------------------- fault injection
#: Record keys that do not depend on timing or on the process's memory history: these must be
#: equal, bit for bit, between an interrupted-and-resumed trial and an uninterrupted run.
TIMING_KEYS = {"epoch_time_s", "train_time_s", "eval_time_s", "peak_mem_bytes", "samples_per_s"}
_REFERENCE: dict[str, list[dict]] = {}


def reference_records(config: dict) -> list[dict]:
    """The records of one uninterrupted run of this trial config (the shared trainer, no Ray)."""
    key = json.dumps(config, sort_keys=True)
    if key not in _REFERENCE:
        from sparsity_tune.trial.config import trial_config
        from sparsity_tune.trial.trainer import Trainer

        trainer = Trainer(trial_config(config), cpus=1)
        trainer.run()
        _REFERENCE[key] = [strip_timing(r) for r in trainer.records]
    return _REFERENCE[key]


def strip_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}


def assert_like_uninterrupted(exp: Path, trials: int, epochs: int, wandb: bool = True) -> None:
    """Every trial finished exactly once, with the records of an uninterrupted run, no file of
    an earlier attempt left beside it, and (with ``wandb``) a W&B run whose steps are 1..N once
    each with the same values, read by W&B's own reader; no fragment without data."""
    dirs = trial_dirs(exp)
    assert len(dirs) == trials, [d.name for d in dirs]
    runs = wandb_runs(exp) if wandb else {}
    for d in dirs:
        cfg, records, summary = trial_files(d)
        assert layout.trial_status(d) == layout.FINISHED, d
        assert summary is not None and summary["epochs"] == epochs
        assert [r["epoch"] for r in records] == list(range(1, epochs + 1)), d
        assert [strip_timing(r) for r in records] == reference_records(cfg["config"]), d
        assert not (d / layout.ERROR).exists() and not (d / layout.STOPPED).exists(), d
        if not wandb:
            continue
        frags = [
            f
            for f in runs.values()
            if f[0]["run"]["config"]["update"]["trial_id"] == cfg["trial_id"]
        ]
        assert len(frags) == 1, f"{d.name}: {len(frags)} W&B runs"
        steps = [h["_step"] for f in frags[0] for h in f["history"]]
        assert steps == list(range(1, epochs + 1)), f"{d.name}: W&B steps {steps}"
        vals = [h["val_acc"] for f in frags[0] for h in f["history"]]
        assert vals == [r["val_acc"] for r in records], d
        assert (
            frags[0][-1]["exit_code"] == 0
            and frags[0][-1]["summary"]["best_val_acc"] == summary["best_val_acc"]
        )
    assert len(runs) == (trials if wandb else 0)


def wait_for(
    predicate: Any, timeout: float, what: str, proc: subprocess.Popen | None = None
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the launcher ended (status {proc.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def record_count(exp: Path) -> int:
    return sum(len(layout.read_records(d, warn=False)) for d in trial_dirs(exp))


def launcher(args: list[str], log: Path) -> subprocess.Popen:
    """``python -m sparsity_tune.launch ARGS`` in its own process (its own local Ray)."""
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sparsity_tune.launch", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )


@contextlib.contextmanager
def interrupt_when(
    proc: subprocess.Popen, ready: Any, what: str, sig: int = signal.SIGINT, timeout: float = 300
) -> Iterator[subprocess.Popen]:
    """Send ``sig`` to the launcher ``proc`` once ``ready()`` holds, from a thread, while the body
    runs (a reference sweep in this process: the two sweeps share the CPUs instead of taking
    turns); on leaving, wait for the launcher to exit. A failed wait fails the test here."""
    failure: list[BaseException] = []

    def watch() -> None:
        try:
            wait_for(ready, timeout, what, proc)
            proc.send_signal(sig)
        except BaseException as err:  # raised again in the test's thread below
            failure.append(err)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield proc
        watcher.join(timeout + 10)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if failure:
        raise failure[0]


def lock_holder(exp: Path) -> dict:
    try:
        return json.loads((exp / ".launch.lock").read_text())
    except (OSError, ValueError):
        return {}


def listening_addresses(pids: list[int]) -> set[str]:
    """Local addresses of the TCP sockets these processes listen on (from /proc/net/tcp{,6})."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    found = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A = LISTEN
                found.add(_ip(f[1].split(":")[0], v6))
    return found


def _ip(hexaddr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped or addr)
