"""Multi-GPU scheduling without a GPU: Ray started with two logical GPUs places trials on them as on
real ones. `gpus_per_trial: 0.25` runs 8 trials at once, four on each GPU, each trial seeing its own
CUDA_VISIBLE_DEVICES; a data-parallel trial with GPUs asks Ray for one per worker. There is no CUDA
here, so the trials then train on the CPU (and data-parallel ones over gloo, not NCCL)."""

import pytest

from harness import store
from harness.sweep.cli import main as sweep_main
from harness.sweep.tune import init_ray

SWEEP = """
name: {name}
dataset: {{name: synthetic, num_train: 1024, num_val: 256, num_test: 256, shape: [1, 8, 8], num_classes: 4}}
model: {{arch: mlp, widths: [32]}}
optimizer: {{name: adam, lr: 0.01}}
train: {{epochs: {epochs}, batch_size: 32, checkpoint: false}}
resources: {resources}
seeds: {seeds}
"""


@pytest.fixture(scope="module")
def logical_gpus():
    import ray

    ray.shutdown()
    init_ray(None, num_cpus=8, num_gpus=2)  # 8 logical CPUs on this 2-core machine: placement, not speed
    yield
    ray.shutdown()


def test_quarter_gpus_run_eight_trials_at_once_four_per_gpu(logical_gpus, tmp_path, write_sweep, capsys):
    path = write_sweep(SWEEP.format(name="quarters", epochs=4, seeds=list(range(8)),
                                    resources="{gpus_per_trial: 0.25, cpus_per_trial: 0.5}"))
    assert sweep_main([str(path), "--results-dir", str(tmp_path), "--no-report"]) == 0
    out = capsys.readouterr()
    assert "at most 8 trial(s) ran at once (0.5 CPU, 0.25 GPU each)" in out.out
    assert "GPUs are not CUDA devices here" in out.err  # said once, not a failure
    trials = store.read_table(tmp_path / "quarters", "trials")
    assert len(trials) == 8 and set(trials["status"]) == {"completed"} and set(trials["device"]) == {"cpu"}
    assert sorted(trials["cuda_visible_devices"]) == ["0"] * 4 + ["1"] * 4


def test_data_parallel_trial_asks_ray_for_a_gpu_per_worker(logical_gpus, tmp_path, write_sweep, capsys):
    path = write_sweep(SWEEP.format(name="dpgpu", epochs=2, seeds=[0],
                                    resources="{gpus_per_trial: 1, cpus_per_trial: 0.5, workers_per_trial: 2}"))
    assert sweep_main([str(path), "--results-dir", str(tmp_path), "--no-report"]) == 0
    trials = store.read_table(tmp_path / "dpgpu", "trials")
    assert list(trials["status"]) == ["completed"] and list(trials["world_size"]) == [2]
    assert list(trials["cuda_visible_devices"]) == ["0,1"]  # Ray Train gave each worker a GPU of the node
