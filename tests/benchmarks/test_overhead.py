"""What a sweep pays around the training itself: Ray's per-trial overhead (bare Tune with trivial trials,
then the real `python -m harness.sweep` with near-empty ones) and Parquet for 100k epoch rows.

    pytest tests/benchmarks --benchmark-only

The figures land in pytest-benchmark's extra_info (`--benchmark-json out.json` keeps them).
"""

import pytest

from harness import bench, store


def test_ray_tune_per_trial_overhead(benchmark):
    """Bare Ray Tune, 12 trivial trials of 3 reports each (on 2 cores: ~4.5 s to start, ~1.2 s a trial)."""
    r = benchmark.pedantic(bench.ray_trial_overhead, kwargs={"n_trials": 12}, rounds=1, iterations=1)
    benchmark.extra_info.update(r)
    assert 0 < r["per_trial_s"] < 30


def test_harness_sweep_per_trial_overhead(benchmark):
    """`python -m harness.sweep` on 2 then 10 near-empty trials: the marginal wall time per trial next
    to the trials' own total_seconds."""
    r = benchmark.pedantic(bench.sweep_overhead, kwargs={"n_small": 2, "n_large": 10}, rounds=1, iterations=1)
    benchmark.extra_info.update(r)
    assert 0 < r["own_s"] and 0 < r["per_trial_s"] < 60


@pytest.mark.parametrize("parts", [1, 1000], ids=["1-part", "1000-parts"])
def test_parquet_write_100k_epoch_rows(benchmark, tmp_path, parts):
    """store.write_part, one part file per trial: 1 trial x 100k epochs, or 1000 trials x 100 epochs."""
    trials = bench.epoch_rows(100_000, parts)
    folders = iter(range(100))

    def fresh():
        return (tmp_path / f"run{next(folders)}",), {}

    def write(folder):
        for rows in trials:
            store.write_part(folder, "epochs", rows[0]["trial_id"], rows)

    benchmark.pedantic(write, setup=fresh, rounds=3, iterations=1)
    assert len(store.read_table(tmp_path / "run0", "epochs")) == 100_000


@pytest.mark.parametrize("parts", [1, 1000], ids=["1-part", "1000-parts"])
def test_parquet_read_100k_epoch_rows(benchmark, tmp_path, parts):
    """store.read_table over the parts written above."""
    for rows in bench.epoch_rows(100_000, parts):
        store.write_part(tmp_path, "epochs", rows[0]["trial_id"], rows)
    frame = benchmark.pedantic(store.read_table, args=(tmp_path, "epochs"), rounds=3, iterations=1)
    assert len(frame) == 100_000 and frame["trial_id"].nunique() == parts
