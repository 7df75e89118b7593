"""--wandb: an offline W&B run of job_type "analysis" in the spec's project and group, holding
the tables, plots and report (read back from the run's .wandb file, W&B's own record format)."""

from __future__ import annotations

import struct
from pathlib import Path

import yaml

from analysis.__main__ import main
from analysis.synthetic import write_experiment


def wandb_records(path: Path) -> list:
    """Records of an offline run file: a LevelDB-style log of protobuf Records (7-byte file
    header, 32 KiB blocks, chunks typed FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, out, buf = path.read_bytes(), 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if n == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + n], pos + 7 + n
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            out.append(buf + chunk)
    records = []
    for raw in out:
        r = pb.Record()
        r.ParseFromString(raw)
        records.append(r)
    return records


def test_wandb_offline_run_holds_the_analysis(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    root = tmp_path / "exp"
    write_experiment(root, grid={"model.depth": [1], "model.width": [32]}, seeds=(0, 1), epochs=3)
    spec = yaml.safe_load((root / "spec.yaml").read_text())
    spec["wandb"] = {"project": "proj-x", "group": "group-y", "mode": "offline"}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), "--x", "nonzero_params", "--wandb", "--quiet"]) == 0
    runs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    records = wandb_records(runs[0])
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.job_type, run.run_group, run.project) == ("analysis", "group-y", "proj-x")
    keys = {
        i.key or "/".join(i.nested_key)
        for r in records
        if r.HasField("history")
        for i in r.history.item
    }
    assert any(k.startswith("pareto/nonzero_params") for k in keys)
    assert any(k.startswith("plots/front_nonzero_params") for k in keys)
    media = runs[0].parent / "files" / "media"
    assert len(list((media / "images" / "plots").glob("*.png"))) == len(
        list((out / "plots").glob("*.png"))
    )
    assert list((media / "html").glob("report_*.html"))
    assert list((media / "table").glob("configs_*.table.json"))
