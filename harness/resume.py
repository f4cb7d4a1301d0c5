"""What `--resume` may reuse: each finished trial's stored config against the sweep file's, and the
plan of which trials run (again).

A trial id names a grid point and a seed, not the whole config: change `train.epochs` or
`optimizer.lr` in the file and every id stays the same. So a finished trial (and an interrupted one's
checkpoint) is reused only when the config it ran with matches the file's, apart from keys that
cannot change a trial's result (where the data lives, resources, the tuner). A mismatch is refused
unless the user says what to do: `--rerun-changed` runs those trials again with the file's config,
`--keep-changed` keeps their results as they are. Failed trials run again with `--retry-failed`.

    plan = plan_resume(trials, stored_configs(results_dir), checkpoint_configs(results_dir),
                       retry_failed=False, on_change=None)
    plan.pending  # the trials to run; plan.forget: their old rows to drop first
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from harness import store
from harness.config import ConfigError, Trial, flatten
from harness.vocabulary import Status

# Keys that do not change what a trial computes: where the files are, how a trial is scheduled.
IGNORED = ("description", "dataset.data_dir", "dataset.download", "train.checkpoint", "train.save_model",
           "resources.", "tune.", "tracking.")


def config_changes(ran: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two configs (as `RunConfig.model_dump(mode="json")`
    dicts), with (ran, now) values; keys in IGNORED are left out, and under tune.scheduler pbt the keys it
    mutates. Pure."""
    a, b = flatten(ran), flatten(now)
    # under PBT the mutated keys change as trials run (harness.sweep.pbt): the file gives only their start
    evolving = set(now.get("tune", {}).get("mutations") or {}) if now.get("tune", {}).get("scheduler") == "pbt" else set()
    changes = {}
    for key in sorted(set(a) | set(b)):
        if key in evolving or any(key == k or (k.endswith(".") and key.startswith(k)) for k in IGNORED):
            continue
        if a.get(key) != b.get(key):
            changes[key] = (a.get(key), b.get(key))
    return changes


@dataclass
class ResumePlan:
    pending: list[Trial]  # trials to run now, in grid order
    forget: list[str] = field(default_factory=list)  # trial ids whose stored rows go before they run again
    discard_checkpoints: list[str] = field(default_factory=list)  # checkpoints made with another config
    kept: int = 0  # finished trials reused as they are


def _describe(changed: dict[str, dict[str, tuple[Any, Any]]], what: str) -> str:
    keys: dict[str, tuple[Any, Any]] = {}
    for diff in changed.values():
        for key, values in diff.items():
            keys.setdefault(key, values)
    shown = ", ".join(f"{k} {json.dumps(v[0])} -> {json.dumps(v[1])}" for k, v in list(keys.items())[:6])
    more = f" and {len(keys) - 6} more key(s)" if len(keys) > 6 else ""
    ids = sorted(changed)
    listed = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return f"{len(ids)} {what} ran with a different config than the file now has: {shown}{more} (trials: {listed})"


def plan_resume(trials: list[Trial], finished: dict[str, tuple[str, Optional[dict]]],
                checkpoints: dict[str, Optional[dict]], *, retry_failed: bool = False,
                on_change: Optional[Literal["rerun", "keep"]] = None, where: str = "--resume") -> ResumePlan:
    """Which trials run. `finished`: trial id -> (status, the config it ran with, or None if not
    stored); `checkpoints`: trial id -> the config an unfinished trial's checkpoint was made with.
    Raises ConfigError naming the trials and keys when configs differ and `on_change` is None."""
    changed_finished, changed_ckpt = {}, {}
    for t in trials:
        now = t.config.model_dump(mode="json")
        if t.trial_id in finished:
            ran = finished[t.trial_id][1]
            diff = config_changes(ran, now) if ran is not None else {}
            if diff:
                changed_finished[t.trial_id] = diff
        elif checkpoints.get(t.trial_id) is not None:
            diff = config_changes(checkpoints[t.trial_id], now)
            if diff:
                changed_ckpt[t.trial_id] = diff
    if (changed_finished or changed_ckpt) and on_change is None:
        parts = []
        if changed_finished:
            parts.append(_describe(changed_finished, "finished trial(s)"))
        if changed_ckpt:
            parts.append(_describe(changed_ckpt, "interrupted trial(s)' checkpoints"))
        raise ConfigError(f"{where}: " + "; ".join(parts) + ": --rerun-changed runs them again with the file's "
                          "config, --keep-changed keeps what they have")
    plan = ResumePlan(pending=[])
    for t in trials:
        status = finished.get(t.trial_id, (None, None))[0]
        rerun = on_change == "rerun" and (t.trial_id in changed_finished or t.trial_id in changed_ckpt)
        if status is None:
            plan.pending.append(t)
            if rerun:
                plan.discard_checkpoints.append(t.trial_id)
        elif rerun or (status == Status.FAILED and retry_failed):
            plan.pending.append(t)
            plan.forget.append(t.trial_id)
            if rerun:
                plan.discard_checkpoints.append(t.trial_id)
        else:
            plan.kept += 1
    return plan


def stored_configs(results_dir: Path) -> dict[str, tuple[str, Optional[dict]]]:
    """Each finished trial's status and the config it ran with (None where none was stored)."""
    rows = store.read_table(results_dir, "trials")
    out = {}
    for tid, status, config in zip(rows["trial_id"], rows["status"],
                                   rows["config"] if "config" in rows else [None] * len(rows)):
        if status in store.FINISHED:
            out[tid] = (status, json.loads(config) if isinstance(config, str) and config else None)
    return out


def checkpoint_configs(results_dir: Path) -> dict[str, Optional[dict]]:
    """The config each interrupted trial's checkpoint was made with (checkpoints/<trial_id>/config.json)."""
    out = {}
    for path in sorted((results_dir / "checkpoints").glob("*/config.json")):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            out[path.parent.name] = None
    return out
