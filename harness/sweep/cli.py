"""The sweep command line: expand a sweep file and run its trials on Ray Tune, over every CPU/GPU
of a machine or a cluster, with a live progress line, resume, shards, and a report at the end.

    python -m harness.sweep sweeps/quickstart.yaml            # run the grid, write results/quickstart/
    python -m harness.sweep sweeps/cifar.yaml --dry-run --json  # the expanded trials, nothing trained

Each Tune trial is one `harness.trial.run_trial` (data-parallel over `resources.workers_per_trial`
Ray Train workers when that is above 1). Results land in Parquet as trials finish, so a crash loses
no finished trial; `--resume` skips finished trials and lets unfinished ones continue from their
last epoch checkpoint. Exit codes: 0 done, 1 some trials failed, 2 bad input, 3 stopped by SIGUSR1 or
SIGTERM (SLURM's warning before the time limit, a preemption): running trials stopped at once and
continue from their checkpoints on --resume (harness.slurm's job then requeues itself).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

from harness import files, store
from harness.config import ArgParser, ConfigError, Trial, load_sweep
from harness.preflight import check_trials
from harness.provenance import SWEEP_COPY
from harness.resume import checkpoint_configs, plan_resume, stored_configs
from harness.sweep.claims import run_claimed
from harness.sweep.packs import member_cap_for, plan_packs, why_not_packed
from harness.sweep.search import check_search, run_search
from harness.sweep.select import parse_shard, random_subset, shard, smoke_overrides, smoke_trials
from harness.sweep.tracking import Trackers, check_trackers, enabled
from harness.sweep.tune import Interrupted, claim_batch, init_ray, run_on_tune, sweep_metric
from harness.vocabulary import Status, format_seconds, lower_is_better

INTERRUPTED = 3  # the exit code of a sweep stopped by SIGUSR1/SIGTERM (the sbatch script requeues on it)


def dry_run_rows(trials: list[Trial], params: dict[str, int]) -> list[dict]:
    """One flat dict per trial: id, flattened config and the model's parameter count (`params`: trial id ->
    count, as check_trials returns them from the models it built)."""
    return [{"trial_id": t.trial_id, "params": params[t.trial_id], **t.config.flat()} for t in trials]


def top_table(results_dir: Path, metric: str = "best_val_acc", most: int = 10) -> str:
    rows = store.read_table(results_dir, "trials")
    if rows.empty or metric not in rows:
        return "(no results)"
    ok = rows[rows["status"] != Status.FAILED].sort_values(metric, ascending=lower_is_better(metric))
    lines = [f"{'rank':>4}  {metric:>12}  {'test_acc':>8}  {'status':<13}  trial"]
    for i, r in enumerate(ok.head(most).itertuples(), 1):
        test = getattr(r, "test_acc", math.nan)
        test = f"{test:8.4f}" if test is not None and math.isfinite(test) else f"{'-':>8}"
        lines.append(f"{i:>4}  {getattr(r, metric):12.4f}  {test}  {r.status:<13}  {r.trial_id}")
    return "\n".join(lines)


def save_sweep_file(sweep: str | Path, results_dir: Path) -> None:
    """An exact copy of the sweep file into RESULTS_DIR/sweep.yaml (atomically), before trials run: each
    trials row records its hash (`sweep_hash`, harness.provenance), and the file stays with its results.
    (The copy is the file's bytes: --set and --smoke overrides are in each row's `config`, not in it.)"""
    try:
        files.write_bytes(results_dir / SWEEP_COPY, Path(sweep).read_bytes())
    except OSError as err:
        print(f"warning: could not copy {sweep} to {results_dir / SWEEP_COPY}: {err}", file=sys.stderr)


def packing_line(trials: list[Trial], no_pack: bool) -> str:
    """How --dry-run expects the trials to pack on this machine (the run sizes packs for the Ray cluster)."""
    import psutil
    import torch

    on_gpu = torch.cuda.is_available()
    memory = torch.cuda.get_device_properties(0).total_memory if on_gpu else psutil.virtual_memory().available
    slots = (torch.cuda.device_count() if on_gpu else os.cpu_count()) or 1
    units = plan_packs(trials, slots=slots, member_cap=member_cap_for(memory * 0.5 / slots), no_pack=no_pack)
    packs = [u for u in units if len(u) > 1]
    reason = why_not_packed(trials[0].config, no_pack)
    if packs:
        return (f"packed on this machine: {sum(map(len, packs))} trials in {len(packs)} packs of "
                f"{min(map(len, packs))}-{max(map(len, packs))}, {len(units) - len(packs)} alone")
    return f"not packed: {reason or 'no two trials share their computation'}"


def build_parser() -> argparse.ArgumentParser:
    p = ArgParser(prog="python -m harness.sweep", description="Run a sweep file's grid on Ray Tune.")
    p.add_argument("sweep", help="sweep file (YAML)")
    p.add_argument("--dry-run", action="store_true", help="print the expanded trials, train nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: a JSON list, one object per trial")
    p.add_argument("--resume", action="store_true", help="skip finished trials, continue unfinished ones")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: run failed trials again (from their last checkpoint)")
    changed = p.add_mutually_exclusive_group()
    changed.add_argument("--rerun-changed", action="store_true",
                         help="with --resume: run trials whose stored config differs from the file's again")
    changed.add_argument("--keep-changed", action="store_true",
                         help="with --resume: keep the results of trials whose stored config differs from the file's")
    p.add_argument("--overwrite", action="store_true", help="delete earlier results of this sweep first")
    p.add_argument("--results-dir", default="results", help="parent folder; results go to DIR/<sweep name>/")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    p.add_argument("--address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable); pins a grid axis")
    p.add_argument("--smoke", action="store_true", help="tiny data, one epoch, a few trials: an end-to-end check")
    p.add_argument("--shard", help="I/N: run only trials i with i %% N == I")
    p.add_argument("--claim", action="store_true",
                   help="claim trials a batch at a time from the results folder, with other processes doing the "
                        "same (SLURM array tasks: harness.sweep.claims)")
    p.add_argument("--no-report", action="store_true", help="do not write the report (live or at the end)")
    p.add_argument("--report-every", type=int, metavar="N",
                   help="rewrite RESULTS_DIR/report every N finished trials while the sweep runs (default: every "
                        "max(5, trials/10), at least 30 s apart; 0: only at the end)")
    p.add_argument("--no-pack", action="store_true",
                   help="run every trial as its own program (default: resources.pack, packs where trials allow)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """The command; SIGUSR1 or SIGTERM at any time (SLURM's time-limit warning, a preemption) exits 3,
    and while trials run has them save mid-epoch and stop (harness.sweep.tune.StopSignals)."""
    import signal

    def stop_now(signum, frame):
        raise Interrupted(signal.Signals(signum).name, [])

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, stop_now)
    try:
        return run_command(argv)
    except Interrupted as stop:
        print(f"\n{stop}", flush=True)
        return INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_command(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, args.overrides)
        if args.smoke:
            sweep = load_sweep(args.sweep, args.overrides + smoke_overrides(sweep))
        trials = sweep.trials
        cfg = sweep.config
        check_trackers(cfg.tracking)  # a tracker's package is missing: exit 2 before anything runs
        if sweep.adaptive:
            check_search(sweep, args.no_pack)  # the searcher's package is missing, ...: exit 2
            if args.shard or args.claim:
                raise ConfigError(f"--{'shard' if args.shard else 'claim'} splits a fixed list of trials; tune.search "
                                  f"{cfg.tune.search} chooses them as it runs: run the sweep as one job")
        if cfg.tune.search == "random" and not sweep.sampled:  # lists only: a subset of the grid's points
            trials = random_subset(trials, cfg.tune.num_samples, sweep.seeds, seed=cfg.seed)
        if args.smoke and not sweep.adaptive:
            trials = smoke_trials(trials)
        if args.shard and args.claim:
            raise ConfigError("--shard and --claim are two ways to share a sweep: use one")
        if args.shard:
            trials = shard(trials, *parse_shard(args.shard))
        if args.max_concurrent is not None and args.max_concurrent < 1:
            raise ConfigError("--max-concurrent must be at least 1")
        if args.report_every is not None and args.report_every < 0:
            raise ConfigError("--report-every must be 0 (only at the end) or more")
        params = check_trials(trials, args.sweep, files=not args.dry_run)  # every model fits: before any trial
        if args.dry_run:
            rows = dry_run_rows(trials, params)
            if args.json:
                print(json.dumps(rows, indent=1, default=str))
            else:
                print(f"{sweep.name}: {len(trials)} trials")
                if sweep.adaptive:
                    reason = why_not_packed(cfg, args.no_pack, seeds_only=True)
                    print(f"tune.search {cfg.tune.search} chooses the {cfg.tune.num_samples} configurations as the sweep "
                          f"runs, each over {len(sweep.seeds)} seed(s) "
                          f"({'one pack' if reason is None else f'one after another: {reason}'}); "
                          f"a random draw of the same size:")
                else:
                    print(packing_line(trials, args.no_pack))
                for r in rows:
                    print(f"  {r['trial_id']}  ({r['model.arch']}, {r['params']:,} params)")
            return 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    results_dir = Path(args.results_dir) / sweep.name
    if args.overwrite and results_dir.exists():
        shutil.rmtree(results_dir)
    resume = args.resume or args.retry_failed or args.rerun_changed or args.keep_changed
    finished = store.finished_trial_ids(results_dir)
    if finished and not resume:
        print(f"error: {results_dir} already holds {len(finished)} finished trial(s) of this sweep: "
              f"--resume to continue it, --overwrite to start again", file=sys.stderr)
        return 2
    # every writer (Ray workers, finalize, shards) gets the trials schema of the whole sweep before any
    # trial writes; a resume starts from compacted files (and repairs an interrupted compaction)
    store.write_schema(results_dir, [t.config for t in sweep.trials])
    if sweep.adaptive:
        return run_adaptive(args, sweep, results_dir)
    store.compact(results_dir, [t.trial_id for t in trials])
    try:
        plan = plan_resume(trials, stored_configs(results_dir), checkpoint_configs(results_dir),
                           retry_failed=args.retry_failed,
                           on_change="rerun" if args.rerun_changed else "keep" if args.keep_changed else None,
                           where=f"{args.sweep}: --resume {results_dir}")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if plan.forget:
        store.forget_trials(results_dir, plan.forget)
    for tid in plan.discard_checkpoints:
        shutil.rmtree(results_dir / "checkpoints" / tid, ignore_errors=True)
    pending = plan.pending
    again = f", {len(plan.forget)} to run again" if plan.forget else ""
    print(f"sweep {sweep.name}: {len(trials)} trials ({plan.kept} already finished{again}) -> {results_dir}/",
          flush=True)
    if pending:
        save_sweep_file(args.sweep, results_dir)

    def run(listen):
        def run_trials(batch: list[Trial]) -> dict[str, str]:
            return run_on_tune(batch, results_dir, address=args.address, max_concurrent=args.max_concurrent,
                               no_pack=args.no_pack, on_finished=listen)

        if not pending:
            return {}
        if not args.claim:
            return run_trials(pending)
        init_ray(args.address)
        return run_claimed(pending, results_dir, claim_batch(cfg, args.no_pack), run_trials,
                           say=lambda text: print(text, flush=True))

    return run_and_report(args, sweep, results_dir, len(pending), run, compact_ids=[t.trial_id for t in trials])


def run_adaptive(args, sweep, results_dir: Path) -> int:
    """An adaptive search (harness.sweep.search): Tune's searcher picks the configurations as it runs,
    continuing (--resume) what results_dir holds."""
    cfg = sweep.config
    store.compact(results_dir)
    print(f"sweep {sweep.name}: tune.search {cfg.tune.search}, {cfg.tune.num_samples} configurations x "
          f"{len(sweep.seeds)} seed(s) -> {results_dir}/", flush=True)
    save_sweep_file(args.sweep, results_dir)
    return run_and_report(args, sweep, results_dir, cfg.tune.num_samples * len(sweep.seeds),
                          lambda listen: run_search(sweep, results_dir, address=args.address,
                                                    max_concurrent=args.max_concurrent, no_pack=args.no_pack,
                                                    on_finished=listen),
                          compact_ids=None)


def run_and_report(args, sweep, results_dir: Path, pending: int, run, compact_ids) -> int:
    """Run (`run(on_finished)` -> trial_id -> status) with the live report and trackers listening, then
    compact, print the summary and the top of the leaderboard, and write the report. The exit code."""
    cfg = sweep.config
    started = time.time()
    live = None
    if pending and not args.no_report and args.report_every != 0:
        from harness.report.live import LiveReport  # imports the report (matplotlib) only in its thread

        live = LiveReport(results_dir, pending, args.report_every)
        print(f"live report: {results_dir / 'report' / 'index.html'} (rewritten every {live.every} finished "
              f"trials{'' if args.report_every else ', at least 30 s apart'})", flush=True)
    trackers = Trackers(cfg.tracking, results_dir, sweep.name) if pending and enabled(cfg.tracking) else None
    listeners = [f for f in (trackers and trackers.log_trials, live and live.finished) if f]  # trackers: never raise

    def on_finished(trial_ids: list[str]) -> None:
        for listen in listeners:
            listen(trial_ids)

    try:
        statuses = run(on_finished if listeners else None)
    except Interrupted:  # SLURM's time-limit warning or a preemption: exit soon (main), resumable
        store.compact(results_dir, compact_ids)
        raise
    finally:
        if live is not None:
            live.close()
        if trackers is not None:
            trackers.close()  # sends trials whose row finalize wrote, flushes
    store.compact(results_dir, compact_ids)  # finished: one file per table (this run's trials only)

    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    print(f"\nfinished {len(statuses)} trials in {format_seconds(time.time() - started)}: "
          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print(top_table(results_dir, "best_" + sweep_metric(cfg)))
    if not args.no_report:
        try:
            from harness.report import write_report  # matplotlib: seconds to import, needed only here

            report = write_report(results_dir)
            print(f"report: {report}")
        except Exception as err:  # noqa: BLE001 - the sweep's results stand even if the report fails
            print(f"warning: the report could not be written: {type(err).__name__}: {err}", file=sys.stderr)
    print(f"results: {results_dir}/")
    return 1 if counts.get(Status.FAILED) else 0
