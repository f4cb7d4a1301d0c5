"""Ranking configurations and telling ties from winners: pure functions of {configuration: {replicate:
value}}, shared by the leaderboard and by the simulations that check its calibration.

The rule, in one place:
- Order: by mean over replicates (seeds, and data splits when they vary), best first.
- Each other configuration is compared with the leader by a two-sided paired t-test over the
  replicates both have (at least 2), and the p-values are corrected for the number of comparisons
  with Holm's step-down method. An entry is *tied* with the leader when its corrected p >= 0.05:
  the test cannot separate them. An entry sharing fewer than 2 replicates with the leader is
  *untested* (neither tied nor separated).
- The leader is the *winner* only when every other configuration was tested and separated from it.
- `p_beats_top`: the share of shared replicates on which the entry beats the leader (Bouthillier et
  al. 2021's probability of improvement, paired), ties counting half.
- Seeds needed: the fewest replicates at which the paired t-test (alpha 0.05, two-sided) would
  separate two configurations with 80% power if their observed mean difference and spread were true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Mapping

from harness.report.stats import (
    ALPHA,
    UNBOUNDED,
    PairedTest,
    Summary,
    holm,
    paired_t,
    prob_of_improvement,
    seeds_needed,
    summarize,
)

Values = Mapping[Hashable, float]  # replicate -> value


@dataclass(frozen=True)
class Separation:
    """A paired comparison of a with b over their shared replicates: the test (None with fewer than 2
    shared), P(a beats b), and the replicates that would separate them at 80% power."""

    shared: int
    test: PairedTest | None
    p_beats: float

    @property
    def p(self) -> float:
        return self.test.p if self.test else math.nan

    @property
    def seeds_needed(self) -> int | None:
        return seeds_needed(self.test.mean_diff, self.test.sd_diff) if self.test else None


def shared_replicates(a: Values, b: Values) -> list:
    return sorted(set(a) & set(b), key=str)


def separation(a: Values, b: Values, higher_is_better: bool = True) -> Separation:
    """Compare a with b over the replicates both have."""
    shared = shared_replicates(a, b)
    xa, xb = [a[k] for k in shared], [b[k] for k in shared]
    return Separation(len(shared), paired_t(xa, xb), prob_of_improvement(xa, xb, higher_is_better))


@dataclass(frozen=True)
class Entry:
    """One configuration's place: its summary and its comparison with the leader (None for the leader)."""

    key: Hashable
    summary: Summary
    versus_top: Separation | None
    p_holm: float
    tied: bool  # the corrected test cannot separate it from the leader (the leader: some entry is tied)

    @property
    def tested(self) -> bool:
        return self.versus_top is not None and self.versus_top.test is not None


def _clean(values: Values) -> dict:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def rank(by_config: Mapping[Hashable, Values], higher_is_better: bool = True,
         bounds: tuple[float, float] = UNBOUNDED, alpha: float = ALPHA,
         labels: Mapping[Hashable, str] | None = None) -> list[Entry]:
    """Entries best first (configurations without a value last; equal means by label, then key)."""
    values = {key: _clean(v) for key, v in by_config.items()}
    summaries = {key: summarize(v.values(), bounds) for key, v in values.items()}
    sign = 1 if higher_is_better else -1
    labels = labels or {}

    def order(key):
        s = summaries[key]
        return (s.n == 0, -sign * s.mean if s.n else 0.0, str(labels.get(key, key)))

    keys = sorted(values, key=order)
    if not keys:
        return []
    top = keys[0]
    versus = {key: separation(values[key], values[top], higher_is_better) for key in keys[1:]}
    p_holm = dict(zip(keys[1:], holm([versus[k].p for k in keys[1:]])))
    tied = {k: not math.isnan(p_holm[k]) and p_holm[k] >= alpha and summaries[k].n > 0 for k in keys[1:]}
    entries = [Entry(top, summaries[top], None, math.nan, any(tied.values()))]
    entries += [Entry(k, summaries[k], versus[k], p_holm[k], tied[k]) for k in keys[1:]]
    return entries


def is_winner(entries: list[Entry], alpha: float = ALPHA) -> bool:
    """The leader is separated from every other configuration (each tested, corrected p < alpha)."""
    others = entries[1:]
    return bool(entries) and bool(others) and entries[0].summary.n > 0 and all(
        e.tested and e.p_holm < alpha for e in others if e.summary.n > 0)


def ranks(entries: list[Entry]) -> list[str]:
    """"1=" for the leader and every entry tied with it, else the position; "–" without a value."""
    return ["–" if e.summary.n == 0 else "1=" if e.tied else str(i + 1) for i, e in enumerate(entries)]
