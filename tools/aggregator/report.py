"""build/report/aggregate.json and PNG plots (holdout accuracy and ε by round)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.aggregator.store import Store


def write_report(store: Store, report_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write aggregate.json and the plots from what the store holds; returns the JSON path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    rounds = store.rounds()
    report = {
        "config": store.get_meta("config"),
        "rounds_committed": len(rounds),
        "epsilon": rounds[-1]["epsilon"] if rounds else 0.0,
        "delta": (store.get_meta("config") or {}).get("delta"),
        "rounds": rounds,
        "integrity_problems": store.integrity_check(),
        "devices": store.device_profiles(),  # each device's build profile and own ledger
        **(extra or {}),
    }
    path = report_dir / "aggregate.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    _plot(rounds, "holdout_accuracy", "holdout accuracy", report_dir / "aggregate_accuracy.png")
    _plot(rounds, "epsilon", "ε (at the configured δ)", report_dir / "aggregate_epsilon.png")
    return path


def _plot(rounds: list[dict[str, Any]], key: str, label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = [], []
    for r in rounds:
        value = r.get(key, r["metrics"].get(key))
        if value is not None:
            xs.append(r["round"])
            ys.append(value)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel("round")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if not xs:
        ax.text(0.5, 0.5, "no data (no holdout or no rounds)", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
