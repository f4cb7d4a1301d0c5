"""The sweep: a sweep file's trials run on Ray Tune. The command line is `python -m harness.sweep`
(harness/sweep/cli.py); the parts it is made of:

    select.py     which trials run: --smoke, --shard, random subsets (pure)
    progress.py   the live progress line
    tune.py       Ray Tune: trainables, schedulers, retries, GPU placement, finalize
    cli.py        argument parsing, --dry-run, resume plans, the run, the top table and the report
"""
