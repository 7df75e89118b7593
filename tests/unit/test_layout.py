"""The trial-directory contract: one status rule, whole files or none, no torn record lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from sparsity_tune import layout


def trial(tmp_path: Path, name: str, **files: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    for fname, text in files.items():
        (d / fname.replace("_", ".", 1)).write_text(text)
    return d


@pytest.mark.parametrize(
    ("files", "status"),
    [
        ({"summary_json": "{}", "error_txt": "old", "stopped_txt": "old"}, "finished"),
        ({"records_jsonl": "{}\n", "error_txt": "boom"}, "failed"),
        ({"records_jsonl": "{}\n", "stopped_txt": "asha"}, "stopped"),
        ({"records_jsonl": "{}\n"}, "running"),
        ({"config_json": "{}"}, "running"),
        ({"summary_json": '{"epochs": 3', "records_jsonl": "{}\n"}, "running"),  # torn: no finish
        ({"summary_json": "[1, 2]", "config_json": "{}"}, "running"),
        ({"params_json": "{}"}, "not_started"),
    ],
)
def test_trial_status_is_one_rule(tmp_path: Path, files: dict, status: str) -> None:
    assert layout.trial_status(trial(tmp_path, "t", **files)) == status


def test_write_text_replaces_whole_files(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "state.json"
    layout.write_json(path, {"a": 1})
    assert layout.read_json(path) == {"a": 1}

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(OSError):
        layout.write_json(path, {"a": 2})
    assert layout.read_json(path) == {"a": 1}  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left


SIZE_LIMITED = """
import json, resource, signal, sys
from pathlib import Path
from sparsity_tune import layout
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of being killed
d = Path(sys.argv[1])
layout.write_json(d / "big.json", {"x": "y" * 100})
layout.append_record(d, {"epoch": 1})
resource.setrlimit(resource.RLIMIT_FSIZE, (400, 400))
out = {}
try:
    layout.write_json(d / "big.json", {"x": "y" * 1000})
except OSError as err:
    out["write"] = err.errno
try:
    layout.append_record(d, {"epoch": 2, "pad": "z" * 1000})
except OSError as err:
    out["append"] = err.errno
print(json.dumps(out))
"""


def test_a_full_disk_leaves_old_files_whole_and_no_torn_line(tmp_path: Path) -> None:
    """A real write limit (RLIMIT_FSIZE, as a full disk): EFBIG, and nothing half-written."""
    proc = subprocess.run(
        [sys.executable, "-c", SIZE_LIMITED, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    errs = json.loads(proc.stdout)  # EFBIG, or ENOSPC for a write cut short at the limit
    assert set(errs) == {"write", "append"} and set(errs.values()) <= {27, 28}
    assert layout.read_json(tmp_path / "big.json") == {"x": "y" * 100}
    assert (tmp_path / layout.RECORDS).read_text() == '{"epoch": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.json", layout.RECORDS]


def test_a_torn_record_is_skipped_with_one_warning_naming_the_file(tmp_path: Path, caplog) -> None:
    (tmp_path / layout.RECORDS).write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    with caplog.at_level(logging.WARNING, logger="sparsity_tune.layout"):
        assert layout.read_records(tmp_path) == [{"epoch": 1}, {"epoch": 2}]
    (msg,) = caplog.messages
    assert str(tmp_path / layout.RECORDS) in msg and "line 3" in msg
