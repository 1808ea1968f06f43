"""Write the demo's results: build/report/demo.json, demo.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from tools.aggregator.report import privacy_lines

PROTOCOL_TEXT = (
    "Each device personalizes on the device from k labelled windows per class of its own data "
    "(the earlier part of its recording) and is scored on its own test part (the later part, "
    "after a gap). Held-out users never took part in pre-training or federation. The local-only "
    "baseline trains a head from zero on the same k windows, with the same optimizer."
)


def plot_global_by_round(report: dict[str, Any], path: Path) -> None:
    fed = report["federated"]
    rounds = list(range(len(fed["global_acc_by_round"]) + 1))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(rounds, [fed["pretrain_acc"], *fed["global_acc_by_round"]], marker="o",
            label="global head (federated devices' test data)")
    ax.axhline(fed["personal_acc"], color="tab:green", linestyle="--",
               label="personal heads after the last round")
    ax.set_xlabel("round (0 = pre-trained head)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report['task']}: global accuracy by round")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_device(report: dict[str, Any], path: Path) -> None:
    devices = report["per_device"]
    names = [f"{d['name']}\n({d['split']})" for d in devices]
    series = [("global_acc", "global"), ("personal_acc", "personal"),
              ("local_only_acc", "local-only")]
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(devices)), 3.8))
    for i, (key, label) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(devices))]
        ax.bar(xs, [d[key] for d in devices], width, label=label)
    ax.set_xticks(range(len(devices)), names, fontsize=7)
    ax.set_ylim(0, 1.15)  # headroom for the legend above the bars
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("accuracy on the device's test data")
    ax.set_title(f"per-device accuracy, k = {report['k']} windows per class")
    ax.legend(fontsize=8, ncols=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_epsilon(report: dict[str, Any], path: Path) -> None:
    privacy = report["privacy"]
    eps = privacy["epsilon_by_round"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(eps) + 1), eps, marker="o")
    ax.set_xlabel("round")
    ax.set_ylabel(f"ε at δ = {privacy['delta']:g}")
    ax.set_title(f"ε against head consumers ({privacy['mode']}, {privacy.get('unit', '')}, "
                 f"z = {privacy['noise_multiplier']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _spread(report: dict[str, Any]) -> str:
    """How far one split's held-out numbers can be trusted: a binomial standard error over the
    test windows, which understates the spread between users."""
    held = [d for d in report["per_device"] if d["split"] == "heldout"]
    windows = sum(d["test_windows"] for d in held)
    users = len({d["user"] for d in held})
    p = report["held_out"]["global_acc"]
    se = (p * (1 - p) / windows) ** 0.5 if windows else float("nan")
    return (f"Spread: this is one split — {len(held)} held-out devices of {users} users, "
            f"{windows} test windows; one binomial standard error is ±{se:.3f} at the global "
            "head's accuracy, and the spread between users is larger. `invoke evaluate` "
            "cross-validates over all users and gives 95 % intervals (docs/EVALUATION.md).")


def markdown(report: dict[str, Any]) -> str:
    p, held, fed = report["privacy"], report["held_out"], report["federated"]
    by_k = "".join(f"| {k} | {v['global_acc']:.3f} | {v['personal_acc']:.3f} | "
                   f"{v['local_only_acc']:.3f} | {v['lift']:+.3f} |\n"
                   for k, v in held["by_k"].items())
    rows = "".join(
        f"| {d['name']} | {d['split']} | {d['global_acc']:.3f} | {d['personal_acc']:.3f} | "
        f"{d['local_only_acc']:.3f} | {d['test_windows']} |\n" for d in report["per_device"])
    spread = _spread(report)
    rounds = ", ".join(f"{a:.3f}" for a in fed["global_acc_by_round"])
    return f"""# fedhead demo — {report['task']} on {report['devices']} {report['board']} boards

**Boards:** {report['profile']} profile firmware (SAMPLE/INFER on host windows: a declared
simulation; production boards refuse both and keep their own ε ledger, docs/PRIVACY.md).

**Privacy:** {p['mode']} DP, clip C = {p['clip']}, noise multiplier z = {p['noise_multiplier']},
{report['rounds']} rounds:

{privacy_lines(p)}
**Evaluation protocol.** {PROTOCOL_TEXT}

## Held-out users (never federated)

| k | global head | personal head | local-only | lift over global |
|---|---|---|---|---|
{by_k}
{spread}

## Federated users

Pre-trained head: {fed['pretrain_acc']:.3f}. Global head by round: {rounds}.
Personal heads after the last round: {fed['personal_acc']:.3f}.

## Per device (k = {report['k']})

| device | split | global | personal | local-only | test windows |
|---|---|---|---|---|---|
{rows}
Bytes per device: {report['bytes']['up_per_device']:.0f} up, \
{report['bytes']['down_per_device']:.0f} down. Wall time {report['wall_s']:.1f} s.

![global accuracy by round](demo_global_by_round.png)
![per-device accuracy](demo_per_device.png)
![epsilon by round](demo_epsilon.png)
"""


def write_report(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_global_by_round(report, out_dir / "demo_global_by_round.png")
    plot_per_device(report, out_dir / "demo_per_device.png")
    plot_epsilon(report, out_dir / "demo_epsilon.png")
    (out_dir / "demo.md").write_text(markdown(report))
    return out_dir / "demo.json"
