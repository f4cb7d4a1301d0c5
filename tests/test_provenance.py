"""Provenance with every trials row: the code version (git commit and dirty tree, or the installed
version), library versions, host and the sweep file's hash (harness.provenance); the sweep CLI's copy
of the sweep file; the columns in a real trial's row; old results without them; and the report's
header line, table and warnings (harness.report.provenance)."""

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from harness import provenance as prov
from harness import store
from harness.config import build_sweep
from harness.provenance import git_version, provenance, results_sweep_hash, sweep_file_hash
from harness.report.provenance import provenance_line, provenance_table, provenance_warnings
from harness.report.results import Results
from harness.trial import run_trial

COLUMNS = [*prov.COLUMNS, "sweep_hash"]
HAS_GIT = shutil.which("git") is not None


def git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------------------------------
# harness.provenance


def test_provenance_in_this_checkout_names_the_commit_and_the_real_versions():
    p = provenance()
    assert list(p) == list(prov.COLUMNS)
    head = subprocess.run(["git", "-C", str(prov.PACKAGE_DIR), "rev-parse", "HEAD"], capture_output=True, text=True)
    if not HAS_GIT or head.returncode != 0:
        pytest.skip("the harness package is not in a git checkout here")
    assert re.fullmatch(r"[0-9a-f]{40}", p["code_commit"]) and p["code_commit"] == head.stdout.strip()
    assert isinstance(p["code_dirty"], bool)
    assert p["harness_version"] == importlib.metadata.version("harness")
    assert p["torch_version"] == torch.__version__ and p["cuda_version"] == torch.version.cuda
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    assert p["cudnn_version"] == (None if cudnn is None else str(cudnn))
    assert p["accelerate_version"] == importlib.metadata.version("accelerate")
    assert p["ray_version"] == importlib.metadata.version("ray")
    assert p["host"] and p["python_version"].count(".") == 2
    p["host"] = "changed"
    assert provenance()["host"] != "changed"  # a fresh dict each call: the cached one is untouched


def test_outside_a_git_checkout_the_installed_version_names_the_code(tmp_path):
    p = provenance(tmp_path)
    assert p["code_commit"] is None and p["code_dirty"] is None
    assert p["harness_version"] == importlib.metadata.version("harness")
    assert p["torch_version"] == torch.__version__


@pytest.mark.skipif(not HAS_GIT, reason="git is not installed")
def test_git_version_commit_dirty_tree_and_untracked_copies(tmp_path):
    """Tracked files changed: dirty; untracked files: not; a copy in an ignored folder of a checkout (a venv
    inside it): no commit, since the checkout does not hold that code."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("venv/\n")
    (tmp_path / "venv" / "pkg").mkdir(parents=True)
    git("init", "-q", cwd=tmp_path)
    git("add", ".", cwd=tmp_path)
    git("commit", "-q", "-m", "one", cwd=tmp_path)
    head = git("rev-parse", "HEAD", cwd=tmp_path)
    assert git_version(tmp_path / "pkg") == (head, False)
    (tmp_path / "pkg" / "new.py").write_text("")  # untracked: ignored
    assert git_version(tmp_path / "pkg") == (head, False)
    (tmp_path / "pkg" / "mod.py").write_text("x = 2\n")
    assert git_version(tmp_path / "pkg") == (head, True)
    assert git_version(tmp_path / "venv" / "pkg") == (None, None)
    assert git_version(tmp_path / "missing") == (None, None)


def test_a_missing_or_hanging_git_gives_no_code_version(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    def hanging(*args, **kwargs):
        raise subprocess.TimeoutExpired("git", prov.GIT_TIMEOUT_S)

    for fake in (missing, hanging):
        monkeypatch.setattr(prov.subprocess, "run", fake)
        assert git_version(prov.PACKAGE_DIR) == (None, None)
    monkeypatch.setattr(prov, "git_version", lambda directory: 1 / 0)  # never raises, whatever fails
    assert provenance(tmp_path / "elsewhere")["code_commit"] is None


def test_sweep_file_hash_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: x\n")
    assert sweep_file_hash(path) == hashlib.sha256(b"name: x\n").hexdigest()[:16]
    assert sweep_file_hash(path) == "a2a79ea37edb1963"  # sha256(b"name: x\n") = a2a79ea37edb1963efaae292...
    path.write_bytes(b"name: x\r\n")
    assert sweep_file_hash(path) != "a2a79ea37edb1963"  # the bytes, not the parsed YAML
    assert results_sweep_hash(tmp_path) is None and results_sweep_hash(None) is None  # no sweep.yaml there
    (tmp_path / "sweep.yaml").write_bytes(b"name: x\n")
    assert results_sweep_hash(tmp_path) == "a2a79ea37edb1963"


# --------------------------------------------------------------------------------------------------
# The trials row


def tiny_config(**dataset):
    raw = {"name": "prov", "dataset": {"name": "digits", **dataset}, "model": {"arch": "mlp", "widths": [16]},
           "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 1, "batch_size": 128},
           "health": {"enabled": False}}
    return build_sweep(raw).trials[0].config


def test_a_trial_row_records_provenance_and_the_sweep_files_hash(tmp_path):
    (tmp_path / "sweep.yaml").write_bytes(b"name: prov\n")
    out = run_trial(tiny_config(), "t0", tmp_path)
    assert out.status == "completed"
    trials = store.read_table(tmp_path, "trials")
    assert set(COLUMNS) <= set(trials.columns)
    row = trials.iloc[0]
    expected = provenance()
    for column in prov.COLUMNS:
        assert row[column] == expected[column] or (row[column] is None and expected[column] is None), column
    assert row["sweep_hash"] == hashlib.sha256(b"name: prov\n").hexdigest()[:16]
    assert row["device"] == "cpu" or torch.cuda.is_available()
    schema = pq.read_schema(next(store.table_dir(tmp_path, "trials").iterdir()))
    assert str(schema.field("code_dirty").type) == "bool" and str(schema.field("sweep_hash").type) == "string"


def test_a_failed_trial_without_a_sweep_file_still_records_provenance(tmp_path):
    out = run_trial(tiny_config(name="cifar10", data_dir=str(tmp_path / "none"), download=False), "bad", tmp_path)
    assert out.status == "failed"
    row = store.read_table(tmp_path, "trials").iloc[0]
    assert out.row["sweep_hash"] is None and pd.isna(row["sweep_hash"])  # no sweep.yaml: `python -m harness.trial`
    assert row["torch_version"] == torch.__version__ and row["host"] == provenance()["host"]


def test_packed_members_record_provenance_and_the_sweep_files_hash(tmp_path):
    from harness.packed_trial import run_pack

    (tmp_path / "sweep.yaml").write_bytes(b"name: x\n")
    trials = build_sweep({"name": "pack", "dataset": {"name": "digits"}, "model": {"arch": "mlp", "widths": [16]},
                          "train": {"epochs": 1, "batch_size": 128}, "seeds": [0, 1]}).trials
    run_pack(trials, tmp_path, "p0")
    rows = store.read_table(tmp_path, "trials")
    assert len(rows) == 2 and set(rows["sweep_hash"]) == {"a2a79ea37edb1963"}
    assert set(rows["host"]) == {provenance()["host"]} and set(rows["ray_version"]) == {provenance()["ray_version"]}


def test_results_written_before_the_provenance_columns_still_read(tmp_path):
    """A trials part without the new columns (an older harness wrote it): read with them null; a --resume's
    compaction brings the file to today's schema."""
    run_trial(tiny_config(name="cifar10", data_dir=str(tmp_path / "none"), download=False), "old", tmp_path)
    part = store.part_path(tmp_path, "trials", "old")
    pq.write_table(pq.read_table(part).drop_columns([c for c in COLUMNS if c != "torch_version"]), part)
    trials = store.read_table(tmp_path, "trials")
    assert set(COLUMNS) <= set(trials.columns) and trials.loc[0, ["code_commit", "sweep_hash"]].isna().all()
    store.compact(tmp_path)
    assert pq.read_schema(store.compacted_path(tmp_path, "trials")).equals(store.table_schema(tmp_path, "trials"))
    assert store.read_table(tmp_path, "trials").loc[0, "trial_id"] == "old"


# --------------------------------------------------------------------------------------------------
# The sweep CLI's copy of the sweep file


SWEEP = """name: copied
dataset: {name: digits}
model: {arch: mlp, widths: [8]}
train: {epochs: 1}
"""


def test_dry_run_writes_no_sweep_copy_and_save_sweep_file_copies_the_bytes(tmp_path, write_sweep):
    from harness.sweep.cli import main, save_sweep_file

    path = write_sweep(SWEEP)
    assert main([str(path), "--dry-run", "--results-dir", str(tmp_path / "results")]) == 0
    assert not (tmp_path / "results" / "copied" / "sweep.yaml").exists()
    save_sweep_file(path, tmp_path / "results" / "copied")
    assert (tmp_path / "results" / "copied" / "sweep.yaml").read_bytes() == path.read_bytes()


def test_a_real_sweep_keeps_its_sweep_file_and_every_row_its_hash(quickstart_run):
    """The README's quickstart (run once per session by conftest): results/quickstart/sweep.yaml is the
    sweep file byte for byte, and every trial (the sweep's and `python -m harness.trial`'s) records its hash."""
    work, runs = quickstart_run
    assert runs and runs[0][1].returncode == 0, runs[0][1].stderr[-3000:] if runs else "nothing ran"
    results = work / "results" / "quickstart"
    assert (results / "sweep.yaml").read_bytes() == (work / "sweeps" / "quickstart.yaml").read_bytes()
    trials = store.read_table(results, "trials")
    assert set(trials["sweep_hash"]) == {sweep_file_hash(work / "sweeps" / "quickstart.yaml")}
    assert trials["code_dirty"].notna().all() or trials["code_commit"].isna().all()
    assert set(trials["ray_version"]) == {importlib.metadata.version("ray")}


# --------------------------------------------------------------------------------------------------
# The report


COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def results_of(rows: list[dict]) -> Results:
    empty = pd.DataFrame()
    return Results(path=Path("results/x"), trials=pd.DataFrame(rows), epochs=empty, classes=empty, confusion=empty)


def row(i, **overrides):
    base = {"trial_id": f"t{i}", "status": "completed", "code_commit": COMMIT_A, "code_dirty": False,
            "harness_version": "0.1.0", "torch_version": "2.14.1", "cuda_version": "13.0", "cudnn_version": "92400",
            "accelerate_version": "1.15.0", "ray_version": "2.60.0", "device": "cpu", "host": "node1",
            "python_version": "3.11.7", "sweep_hash": "a2a79ea37edb1963"}
    return {**base, **overrides}


def test_uniform_trials_give_one_line_one_table_row_and_no_warning():
    results = results_of([row(i) for i in range(3)])
    assert provenance_warnings(results) == []
    assert provenance_line(results) == ("Code aaaaaaa, torch 2.14.1 (CUDA 13.0, cuDNN 9.24.0), accelerate 1.15.0, "
                                        "ray 2.60.0, on cpu @ node1.")
    table = provenance_table(results)
    assert table.name == "provenance" and len(table.data) == 1 and table.data.loc[0, "trials"] == 3
    assert table.view.loc[0, "Code"] == "aaaaaaa" and table.view.loc[0, "cuDNN"] == "9.24.0"
    assert table.view.loc[0, "Trials"] == "3" and table.view.loc[0, "Sweep file"] == "a2a79ea37edb1963"


def test_mixed_devices_commits_and_dirty_trees_are_warned_about():
    results = results_of([row(0), row(1, code_dirty=True), row(2, code_commit=COMMIT_B, device="NVIDIA H100"),
                          row(3, code_commit=COMMIT_B, device="NVIDIA H100", torch_version="2.15.0",
                              sweep_hash="0123456789abcdef")])
    warnings = provenance_warnings(results)
    text = "\n".join(warnings)
    assert len(warnings) == 5, text
    assert "3 code versions (aaaaaaa, aaaaaaa (dirty), bbbbbbb)" in text
    assert "1 of 4 trials ran on a dirty tree" in text
    assert "2 devices (cpu, NVIDIA H100): throughput across devices is not comparable" in text
    assert "2 different sweep files" in text and "2 torch versions (2.14.1, 2.15.0)" in text
    line = provenance_line(results)
    assert line.startswith("Code mixed, torch mixed (CUDA 13.0, cuDNN 9.24.0)") and "on 2 devices @ node1" in line
    assert line.endswith("(mixed: see Provenance).")
    table = provenance_table(results)
    assert len(table.data) == 4 and table.data["trials"].sum() == 4
    assert list(table.view["Code"]) == ["aaaaaaa", "aaaaaaa (dirty)", "bbbbbbb", "bbbbbbb"]


def test_only_the_installed_version_outside_git_and_an_all_dirty_sweep():
    results = results_of([row(i, code_commit=None, code_dirty=None, harness_version="0.2.0") for i in range(2)])
    assert provenance_warnings(results) == []
    assert provenance_line(results).startswith("Code harness 0.2.0, torch 2.14.1")
    dirty = results_of([row(i, code_dirty=True) for i in range(2)])
    assert provenance_warnings(dirty) == ["All trials ran on a dirty tree (uncommitted changes to tracked files): "
                                          "their commit does not say exactly what code ran."]
    assert provenance_line(dirty).startswith("Code aaaaaaa (dirty), ")


def test_old_results_without_the_columns_show_dashes_and_warn_only_about_what_they_have():
    old = [{"trial_id": "t0", "status": "completed", "device": "cpu", "torch_version": "2.5.0"},
           {"trial_id": "t1", "status": "failed", "device": "Tesla V100-SXM2-16GB", "torch_version": "2.5.0"}]
    results = results_of(old)
    assert provenance_warnings(results) == ["Trials ran on 2 devices (cpu, Tesla V100-SXM2-16GB): "
                                            "throughput across devices is not comparable."]
    assert provenance_line(results) == "Torch 2.5.0, on 2 devices (mixed: see Provenance)."
    table = provenance_table(results)
    assert list(table.view.loc[0]) == ["–", "2.5.0", "–", "–", "–", "–", "cpu", "–", "–", "1"]
    bare = results_of([{"trial_id": "t0", "status": "completed"}])
    assert provenance_line(bare) == "Provenance not recorded (results from an older harness)."
    assert provenance_warnings(bare) == [] and len(provenance_table(bare).data) == 1
    empty = results_of([])
    assert provenance_warnings(empty) == [] and provenance_table(empty).data.empty


def test_a_mix_of_old_and_new_rows_read_from_parquet(tmp_path):
    """Rows as read_table gives them (code_dirty a nullable bool, NaN/None for what old rows lack)."""
    frame = pd.DataFrame([row(0), {"trial_id": "t1", "status": "failed", "device": "cpu"}])
    frame.to_parquet(tmp_path / "t.parquet")
    results = results_of(pd.read_parquet(tmp_path / "t.parquet").to_dict("records"))
    assert provenance_warnings(results) == []
    assert provenance_line(results).startswith("Code aaaaaaa, torch 2.14.1")
    assert sorted(provenance_table(results).data["trials"]) == [1, 1]
    assert json.dumps(provenance_table(results).view.to_dict("records"))  # plain strings
