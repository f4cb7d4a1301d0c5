"""The sweep: a sweep file's trials run on Ray Tune. The command line is `python -m harness.sweep`
(harness/sweep/cli.py); the parts it is made of:

    select.py     which trials run: --smoke, --shard, random subsets (pure)
    progress.py   the live progress line
    tune.py       Ray Tune: trainables, schedulers, retries, GPU placement, stop signals, finalize
    packs.py      which trials share a pack
    search.py     adaptive search: Tune's searchers (optuna, hyperopt, bohb)
    pbt.py        population based training: Tune's PBT and the trials' copies
    claims.py     trials shared between processes by claim files (SLURM arrays)
    tracking.py   experiment trackers (TensorBoard, MLflow, W&B)
    cli.py        argument parsing, --dry-run, resume plans, the run, the top table and the report
"""
