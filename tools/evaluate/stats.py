"""Statistics of the evaluation: per-user means, then a t interval over users.

The unit is the user (both wrists of a subject share habits and anatomy), so each user's
devices and repeated shot draws are averaged first; the interval is Student's t over those
user means, which treats users as the independent samples they are.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import stats


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, standard error and the two-sided t interval of independent values."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values")
    mean = float(x.mean())
    if x.size == 1:
        return {"mean": mean, "sem": math.nan, "lo": math.nan, "hi": math.nan, "n": 1}
    sem = float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * sem
    return {"mean": mean, "sem": sem, "lo": mean - half, "hi": mean + half, "n": int(x.size)}


def user_means(rows: Iterable[Mapping[str, Any]], key: str) -> dict[str, float]:
    """Mean of `key` over each user's rows (devices and repeats)."""
    by_user: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_user[row["user"]].append(float(row[key]))
    return {user: float(np.mean(v)) for user, v in sorted(by_user.items())}


def summarize(
    rows: list[Mapping[str, Any]],
    metrics: tuple[str, ...],
    pairs: tuple[tuple[str, str], ...] = (),
    confidence: float = 0.95,
) -> dict:
    """mean_ci over users of every metric, and of the paired per-user differences a - b."""
    means = {m: user_means(rows, m) for m in metrics}
    out: dict[str, Any] = {m: mean_ci(means[m].values(), confidence) for m in metrics}
    for a, b in pairs:
        diff = [means[a][u] - means[b][u] for u in means[a]]
        out[f"{a}-{b}"] = mean_ci(diff, confidence)
    return out
