"""``slurm status``: SLURM's answers parsed, the experiment's progress read from trial files.

SLURM's commands are replaced by recorded outputs of SLURM 22.05 here; the integration tests
ask a real SLURM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sparsity_tune import layout
from sparsity_tune.cluster import status
from sparsity_tune.sweep import resolve, state

REPO = Path(__file__).resolve().parents[2]


def fake_slurm(monkeypatch, answers: dict[str, tuple[int, str, str]]) -> list[list[str]]:
    """Answer each SLURM command by the first key found in its command line."""
    calls: list[list[str]] = []

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        line = " ".join(cmd)
        for key, (rc, out, err) in answers.items():
            if key in line:
                return subprocess.CompletedProcess(cmd, rc, out, err)
        return subprocess.CompletedProcess(cmd, 1, "", "not answered")

    monkeypatch.setattr(status, "_run", run)
    return calls


def test_progress_counts_trials_from_their_files(tmp_path):
    exp = tmp_path / "smoke"
    req = resolve.from_file(str(REPO / "search_spaces" / "smoke.yaml"), [], storage=str(tmp_path))
    assert req.exp == str(exp) and req.plan.trials == 4
    exp.mkdir()
    (exp / layout.SPEC).write_text("name: [not, a, spec]\n")  # status reads the saved plan only
    assert status.progress(str(exp)).startswith(f"{exp}: 0 of ? trials")  # no launch.json yet
    state.LaunchRecord(
        spec=req.spec, spec_file=req.spec_file, overrides=[], name="smoke", storage=req.storage,
        plan=req.plan.results(),
    ).save(exp)  # fmt: skip
    for name, files in {
        "trial_a": [layout.CONFIG, layout.RECORDS, layout.SUMMARY],
        "trial_b": [layout.CONFIG, layout.RECORDS, layout.ERROR],
        "trial_c": [layout.CONFIG, layout.RECORDS],
    }.items():
        (exp / name).mkdir()
        for f in files:
            (exp / name / f).write_text("{}")
    assert status.progress(str(exp)) == (
        f"{exp}: 1 of 4 trials finished, 1 unfinished, 1 failed, 1 not started"
    )
    # a summary wins over the error.txt of an earlier failed attempt
    (exp / "trial_b" / layout.SUMMARY).write_text("{}")
    assert status.progress(str(exp)).startswith(f"{exp}: 2 of 4 trials finished")
    assert "not created yet" in status.progress(str(tmp_path / "nothing"))


def test_finished_job_comes_from_the_job_completion_log(monkeypatch):
    """accounting_storage/none + jobcomp/filetxt: `sacct` refuses, `sacct --completion` answers
    with one row per run; a requeued run is recorded as PENDING."""
    fake_slurm(
        monkeypatch,
        {
            "squeue": (0, "", ""),
            "sacct -n -P -j 34 -o JobID,JobName,State,Elapsed,Start,End,NodeList,ExitCode -X -D": (
                1,
                "",
                "Slurm accounting storage is disabled",
            ),
            "--completion": (
                0,
                "34|st-rq|PENDING|00:00:36|2026-11-25T17:20:23|2026-11-25T17:20:59|vm|0:0\n"
                "34|st-rq|PENDING|00:00:39|2026-11-25T17:21:38|2026-11-25T17:22:17|vm|0:0\n"
                "34|st-rq|COMPLETED|00:00:47|2026-11-25T17:22:54|2026-11-25T17:23:41|vm|0:0\n",
                "",
            ),
        },
    )
    job = status.job_state("34")
    assert (job.state, job.restarts, job.elapsed, job.elapsed_total) == (
        "COMPLETED",
        2,
        "00:00:47",
        "00:02:02",
    )
    assert job.source == "sacct --completion"
    text = status.describe(job, {"name": "rq", "log": "/nowhere/st-rq-34.out"})
    assert text.splitlines()[0] == "job 34 (st-rq): COMPLETED, exit code 0:0, requeued 2 time(s)"
    assert "00:00:47 this run, 00:02:02 in all" in text
    assert "/nowhere/st-rq-34.out (not written yet)" in text


def test_queued_job_comes_from_squeue_with_restarts_from_scontrol(monkeypatch):
    fake_slurm(
        monkeypatch,
        {
            "squeue": (0, "34|st-rq|PENDING|0:00|UNLIMITED||BeginTime\n", ""),
            "scontrol show job -o 34": (
                0,
                "JobId=34 JobName=st-rq JobState=PENDING Reason=BeginTime Restarts=1 "
                "StdOut=/r/slurm/st-rq-34.out\n",
                "",
            ),
        },
    )
    job = status.job_state("34")
    assert (job.state, job.reason, job.restarts, job.source) == (
        "PENDING",
        "BeginTime",
        1,
        "squeue",
    )
    assert status.describe(job, {}).splitlines()[0] == (
        "job 34 (st-rq): PENDING (BeginTime), requeued 1 time(s)"
    )


def test_a_job_slurm_forgot_says_why(monkeypatch):
    fake_slurm(
        monkeypatch,
        {
            "squeue": (1, "", "slurm_load_jobs error: Invalid job id specified"),
            "-X -D": (1, "", "Slurm accounting storage is disabled"),
            "--completion": (0, "", ""),
            "scontrol": (1, "", "slurm_load_jobs error: Invalid job id specified"),
        },
    )
    job = status.job_state("7")
    assert job.state == "UNKNOWN"
    assert "Slurm accounting storage is disabled" in job.notes[0]
    assert "JobCompType=jobcomp/filetxt" in job.notes[0]


def test_cards_are_private_and_found_by_cluster_and_id(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(status, "cluster_name", lambda: "lab")
    status.record_job("12", {"name": "smoke", "experiment": "/r/smoke"})
    path = tmp_path / "sparsity-tune" / "slurm-jobs" / "lab-12.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert status.read_card("12", "lab")["experiment"] == "/r/smoke"
    assert status.read_card("12", "other") == {}
    assert [c["job_id"] for c in status.recent_cards("lab")] == ["12"]


@pytest.mark.parametrize("bad", ["12a", "1;id", ""])
def test_status_refuses_a_malformed_job_id(capsys, bad):
    assert status.main([bad]) == 2
    assert "use the number sbatch printed" in capsys.readouterr().err
