"""build/report/aggregate.json, aggregate.md and PNG plots (holdout accuracy and ε by round).

Published artifacts carry what the consumers of released heads may see and the privacy
figures of every party (docs/PRIVACY.md, "What each party sees"): no selection lists, no
per-device counts, losses or example counts, no per-round update counts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tools.aggregator import privacy
from tools.aggregator.config import AggregatorConfig, PrivacyMode, PrivacyUnit
from tools.aggregator.sampling import Population, plan
from tools.aggregator.store import Store

NO_LEDGER = "not reported by firmware"


def _figure(value: float) -> float | str:
    return value if math.isfinite(value) else "unbounded (updates reach it without noise)"


def unit_description(config: AggregatorConfig, enrollment: dict[int, str]) -> tuple[str, str]:
    """("user-level" or "device-level", one sentence saying what a unit is here)."""
    users = Population.from_enrollment(enrollment, PrivacyUnit.USER)
    automatic = all(user == f"device-{d}" for d, user in enrollment.items())
    if config.unit == PrivacyUnit.DEVICE:
        return "device-level", (
            f"each device is its own unit; a user with {users.max_devices_per_unit} devices "
            "is protected only as well as the composition of their devices' figures"
        )
    if automatic:
        return "device-level", (
            "no device → user mapping was enrolled, so every device counts as its own user: "
            "this is device-level, not user-level"
        )
    return "user-level", (
        f"{users.units} enrolled users own {users.devices} devices (at most "
        f"{users.max_devices_per_unit} each); one user's devices are sampled together and "
        f"the sensitivity is {users.max_devices_per_unit}·C'"
    )


def privacy_summary(store: Store) -> dict[str, Any]:
    """The figures every report prints, recomputed from the store's ledger."""
    config = AggregatorConfig.from_dict(store.get_meta("config") or {})
    enrollment = store.enrollment()
    population = Population.from_enrollment(enrollment, config.unit)
    latest = store.latest_head()
    n_params = 0 if latest is None else int(latest[1].size + latest[2].size)
    level, meaning = unit_description(config, enrollment)
    unit_of = population.unit_of()
    noise_by_unit: dict[str, list[float]] = {}
    for device_id, sigmas in store.received_noise_by_device().items():
        noise_by_unit.setdefault(unit_of.get(device_id, f"device-{device_id}"), []).extend(sigmas)
    against_aggregator = max(
        (privacy.aggregator_epsilon(config, s, n_params) for s in noise_by_unit.values()),
        default=0.0,
    )
    if config.secagg:  # it sees only sums, released or not (PRIVACY.md "What each party sees")
        against_aggregator = secagg_aggregator_epsilon(store, config, unit_of, n_params)
    ledgers = [float(v) for v in (store.get_meta("device_ledger") or {}).values()]
    released = store.events()
    current = plan(config, population) if population.units else None
    sampling_rate = current.q if current else None
    sigma = privacy.plan_noise_std(config, current) if current else 0.0
    shares = privacy.noise_shares(config, current) if current else (0, 0)
    return {
        "mode": str(config.privacy),
        "unit": level,
        "unit_meaning": meaning,
        "neighbouring_relation": privacy.relation(config).name.lower(),
        "sampling": "poisson (CSPRNG, over the registered population)",
        "sampling_rate": sampling_rate,
        "registered_units": population.units,
        "clip": config.clip,
        "sensitivity_per_update": privacy.update_sensitivity(config, n_params, sigma),
        "noise_multiplier": config.noise_multiplier,
        "delta": config.delta,
        "rounds_released": len(released),
        "epsilon_against_head_consumers": (
            None if config.privacy == PrivacyMode.NONE else privacy.ledger_epsilon(config, released)
        ),
        "epsilon_against_aggregator_worst_unit": (
            None if config.privacy == PrivacyMode.NONE else _figure(against_aggregator)
        ),
        "aggregator_relation": (
            "zero_out: every SecAgg sum it saw, no amplification"
            if config.secagg
            else "replace_one: every update it received, no amplification"
        ),
        "epsilon_device_ledger_max": max(ledgers) if ledgers else NO_LEDGER,
        "secagg": config.secagg,
        "secagg_unreleased_sums": int(store.get_meta("secagg_unreleased_sums") or 0),
        **(
            {"noise_shares_released": shares[0], "noise_shares_calibrated": shares[1]}
            if config.privacy == PrivacyMode.DISTRIBUTED
            else {}
        ),
    }


def secagg_aggregator_epsilon(
    store: Store, config: AggregatorConfig, unit_of: dict[int, str], n_params: int
) -> float:
    """Worst unit's ε against an aggregator that saw only SecAgg sums: every sum that held one
    of the unit's devices (released or not), with the k shares it held (privacy.sum_epsilon)."""
    sums: dict[str, list[tuple[float, int, int]]] = {}
    for sigma, devices in store.sums_by_round().values():
        per_unit: dict[str, int] = {}
        for device_id in devices:
            unit = unit_of.get(device_id, f"device-{device_id}")
            per_unit[unit] = per_unit.get(unit, 0) + 1
        for unit, count in per_unit.items():
            sums.setdefault(unit, []).append((sigma, len(devices), count))
    return max(
        (privacy.sum_epsilon(config, s, n_params) for s in sums.values()),
        default=0.0,
    )


def profile_counts(store: Store) -> dict[str, int]:
    """How many devices ran each firmware profile (production / replay). Published as counts:
    device ids and per-device ledgers stay in the store (operator-only)."""
    counts: dict[str, int] = {}
    for device in store.device_profiles():
        counts[device["profile"]] = counts.get(device["profile"], 0) + 1
    return dict(sorted(counts.items()))


def published_rounds(store: Store) -> list[dict[str, Any]]:
    """Per round: whether a head was released, ε after it, the holdout score of the head."""
    return [
        {
            "round": r["round"],
            "released": r["outcome"] == "released",
            "head": r["head_out"],
            "epsilon": r["epsilon"],
            **{k: v for k, v in r["metrics"].items() if k.startswith("holdout_")},
        }
        for r in store.rounds()
    ]


def write_report(store: Store, report_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write aggregate.json, aggregate.md and the plots from the store; returns the JSON path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    rounds = published_rounds(store)
    summary = privacy_summary(store)
    report = {
        "config": store.get_meta("config"),
        "rounds_committed": len(rounds),
        "epsilon": summary["epsilon_against_head_consumers"],
        "delta": summary["delta"],
        "privacy": summary,
        "rounds": rounds,
        "integrity_problems": store.integrity_check(),
        "device_profiles": profile_counts(store),
        **(extra or {}),
    }
    path = report_dir / "aggregate.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    (report_dir / "aggregate.md").write_text(markdown(report))
    _plot(rounds, "holdout_accuracy", "holdout accuracy", report_dir / "aggregate_accuracy.png")
    _plot(rounds, "epsilon", "ε (at the configured δ)", report_dir / "aggregate_epsilon.png")
    return path


def privacy_lines(p: dict[str, Any]) -> str:
    """Markdown bullet list of the three figures (shared with the demo report)."""
    if p["mode"] == "none":
        return "- privacy mode none: no guarantee against anyone.\n"

    def fmt(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    return (
        f"- unit: **{p['unit']}** — {p['unit_meaning']}; neighbouring relation "
        f"{p['neighbouring_relation']}; sampling {p['sampling']}, q = {fmt(p['sampling_rate'])}\n"
        f"- ε against consumers of released heads: **{fmt(p['epsilon_against_head_consumers'])}**"
        f" at δ = {p['delta']:g} ({p['rounds_released']} released rounds, "
        f"sensitivity C' = {p['sensitivity_per_update']:.4g} per update)"
        + _shares_note(p)
        + _aggregator_line(p, fmt)
        + f"- ε in the device's own ledger (largest reported): "
        f"{fmt(p['epsilon_device_ledger_max'])}\n"
    )


def _shares_note(p: dict[str, Any]) -> str:
    if "noise_shares_released" not in p:
        return "\n"
    return (
        f"; every release carries the noise of K = {p['noise_shares_released']} device shares "
        f"(σ = z·C/√t, t = {p['noise_shares_calibrated']}), the aggregator adding those of "
        "devices that did not arrive: this figure trusts the aggregator to do so, as central "
        "mode trusts it with all the noise\n"
    )


def _aggregator_line(p: dict[str, Any], fmt: Any) -> str:
    if not p.get("secagg"):
        return (
            f"- ε against the aggregator (worst unit, each update seen alone): "
            f"**{fmt(p['epsilon_against_aggregator_worst_unit'])}**\n"
        )
    unreleased = p.get("secagg_unreleased_sums", 0)
    caveat = (
        f" (including {unreleased} sums of rounds that were not released)" if unreleased else ""
    )
    return (
        f"- ε against the aggregator: secure aggregation on, it saw only sums (each of ≥ t "
        f"device noise shares; zero-out, no amplification: it chose the sample): "
        f"**{fmt(p['epsilon_against_aggregator_worst_unit'])}**{caveat}\n"
    )


def markdown(report: dict[str, Any]) -> str:
    p = report["privacy"]
    released = sum(r["released"] for r in report["rounds"])
    profiles = report["device_profiles"]
    seen = ", ".join(f"{n} {name}" for name, n in profiles.items()) or "none seen"
    return (
        f"# fedhead aggregate — {p['mode']} DP\n\n"
        f"{report['rounds_committed']} rounds committed, {released} released a head.\n"
        f"Device firmware: {seen}"
        f"{' (replay boards: a declared simulation)' if 'replay' in profiles else ''}.\n\n"
        f"{privacy_lines(p)}\n"
        "![holdout accuracy](aggregate_accuracy.png)\n![epsilon](aggregate_epsilon.png)\n"
    )


def _plot(rounds: list[dict[str, Any]], key: str, label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["round"] for r in rounds if r.get(key) is not None]
    ys = [r[key] for r in rounds if r.get(key) is not None]
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
