"""Population based training in the report: each trial's lineage (harness.sweep.pbt's `pbt_schedule`:
whose weights it ends with, and the hyperparameters they trained with from which epoch), best first.

    pbt_table(results, metric)   the lineages as a Table, or None when the sweep did not run PBT

Under PBT a trial's result belongs to its lineage, not to the starting point its id names: the note
says so beside the leaderboard, which still groups trials by their starting point.
"""

from __future__ import annotations

from typing import Optional

from harness.report.results import Results, parse_json
from harness.report.tables import Table, fmt, fmt_sig, view
from harness.vocabulary import direction

NOTE = ("This sweep ran population based training (tune.scheduler pbt): at each perturbation epoch a weak trial "
        "copied a strong one's weights and went on with perturbed hyperparameters. A trial's result belongs to "
        "the lineage in the PBT table, not to the starting point its id names; the leaderboard still groups "
        "trials by starting point, and its intervals treat them as independent runs, which copies are not.")


def _short(values: dict) -> str:
    return ", ".join(f"{k.split('.')[-1]} {fmt_sig(v)}" for k, v in values.items())


def lineage_text(schedule: list[dict]) -> str:
    """'lr=0.3-seed=0 (lr 0.3) → epoch 4: lr=0.001-seed=0 (lr 0.36)'."""
    parts = []
    for step in schedule:
        where = "" if step["epoch"] == 0 else f"epoch {step['epoch']}: "
        parts.append(f"{where}{step['trial']} ({_short(step['config'])})")
    return " → ".join(parts)


def pbt_table(results: Results, metric: str) -> Optional[Table]:
    trials = results.trials
    if "pbt_schedule" not in trials or trials["pbt_schedule"].isna().all():
        return None
    rows = trials[trials["pbt_schedule"].notna()].copy()
    schedules = [parse_json(s) for s in rows["pbt_schedule"]]
    rows["copies"] = [sum(1 for a, b in zip(s, s[1:]) if a["trial"] != b["trial"]) for s in schedules]
    rows["lineage"] = [lineage_text(s) for s in schedules]
    rows = rows.sort_values(metric, ascending=direction(metric) != "max", na_position="last")
    data = rows[["trial_id", metric, "copies", "lineage"]].reset_index(drop=True)
    shown = view(data, {"trial_id": "trial", metric: metric, "copies": "copies in its lineage", "lineage": "lineage"},
                 {metric: fmt})
    return Table("pbt", "Population based training: lineages", data, shown, NOTE)
