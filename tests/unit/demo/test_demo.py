"""The default demo on host boards: its report has every key, the numbers are consistent with
each other, and it meets the bar of issue 7 (held-out lift ≥ 0.05, federated global head at
least as good as the pre-trained one). Real firmware processes, real link, real aggregator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dp_accounting
import pytest

from tools.demo.run import DemoConfig, run_demo


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    run_demo(DemoConfig(), report_dir=out)
    for name in ("demo.json", "demo.md", "demo_global_by_round.png", "demo_per_device.png",
                 "demo_epsilon.png"):
        assert (out / name).stat().st_size > 0, name
    return json.loads((Path(out) / "demo.json").read_text())


def test_report_has_the_keys_of_issue_7(report: dict) -> None:
    for key in ("task", "board", "devices", "rounds", "privacy", "held_out", "federated",
                "per_device", "bytes", "wall_s"):
        assert key in report
    assert set(report["privacy"]) >= {"mode", "clip", "noise_multiplier", "epsilon", "delta"}
    assert set(report["held_out"]) >= {"global_acc", "personal_acc", "lift"}
    assert set(report["federated"]) >= {"pretrain_acc", "global_acc_by_round", "personal_acc"}
    assert set(report["bytes"]) == {"up_per_device", "down_per_device"}
    assert (report["task"], report["board"]) == ("watch", "host")


def test_numbers_agree_with_each_other(report: dict) -> None:
    held, fed = report["held_out"], report["federated"]
    assert held["lift"] == pytest.approx(held["personal_acc"] - held["global_acc"])
    assert len(fed["global_acc_by_round"]) == report["rounds"]
    assert len(report["per_device"]) == report["devices"]
    held_rows = [d for d in report["per_device"] if d["split"] == "heldout"]
    mean_personal = sum(d["personal_acc"] for d in held_rows) / len(held_rows)
    assert held["personal_acc"] == pytest.approx(mean_personal)
    for row in report["per_device"]:
        for key in ("pretrain_acc", "global_acc", "personal_acc", "local_only_acc"):
            assert 0.0 <= row[key] <= 1.0
    assert report["bytes"]["up_per_device"] > 0 and report["bytes"]["down_per_device"] > 0


def test_epsilon_is_what_dp_accounting_says(report: dict) -> None:
    p = report["privacy"]
    accountant = dp_accounting.rdp.RdpAccountant()
    # every device, every round; z relative to the 8-bit update's bound C + s·√P
    assert p["accounted_noise_multiplier"] < p["noise_multiplier"]
    event = dp_accounting.GaussianDpEvent(p["accounted_noise_multiplier"])
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, report["rounds"]))
    assert math.isclose(p["epsilon"], accountant.get_epsilon(p["delta"]), rel_tol=1e-9)


def test_meets_the_bar(report: dict) -> None:
    assert report["held_out"]["lift"] >= 0.05
    fed = report["federated"]
    assert fed["global_acc_by_round"][-1] >= fed["pretrain_acc"]
