"""The evaluation's statistics: t intervals over users, user-level averaging, paired
differences, and the folds' rotation of held-out users."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.evaluate.crossval import EvalConfig, fold_users
from tools.evaluate.stats import mean_ci, summarize, user_means


def test_mean_ci_matches_the_t_interval_by_hand():
    s = mean_ci([1, 2, 3, 4, 5])
    sem = math.sqrt(2.5) / math.sqrt(5)
    assert s["mean"] == 3 and s["sem"] == pytest.approx(sem)
    assert s["hi"] - s["mean"] == pytest.approx(2.776445 * sem, rel=1e-6)  # t(0.975, 4)
    assert s["mean"] - s["lo"] == pytest.approx(s["hi"] - s["mean"])
    assert math.isnan(mean_ci([0.7])["lo"])
    with pytest.raises(ValueError):
        mean_ci([])


def test_mean_ci_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials = 4000
    covered = sum(
        s["lo"] <= 0.8 <= s["hi"]
        for s in (mean_ci(rng.normal(0.8, 0.05, 10)) for _ in range(trials))
    )
    # binomial sd of the coverage at 4000 trials is 0.0034: 4 sd either side
    assert abs(covered / trials - 0.95) < 0.014


def test_users_are_the_unit_and_differences_are_paired():
    rows = [
        {"user": "a", "p": 0.9, "l": 0.8},
        {"user": "a", "p": 0.7, "l": 0.6},  # user a: means 0.8 / 0.7
        {"user": "b", "p": 0.5, "l": 0.5},
        {"user": "c", "p": 1.0, "l": 0.8},
    ]
    assert user_means(rows, "p") == pytest.approx({"a": 0.8, "b": 0.5, "c": 1.0})
    out = summarize(rows, ("p", "l"), (("p", "l"),))
    assert out["p"]["n"] == 3 and out["p"]["mean"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    diff = mean_ci([0.1, 0.0, 0.2])
    assert out["p-l"]["mean"] == pytest.approx(diff["mean"])
    assert out["p-l"]["lo"] == pytest.approx(diff["lo"])


def test_every_user_is_held_out_exactly_once_and_never_trains_its_fold():
    users = [f"s{i:02d}" for i in range(1, 11)]
    folds = fold_users(users, EvalConfig())
    held = [u for f in folds for u in f["heldout"]]
    assert sorted(held) == users
    for f in folds:
        assert len(f["heldout"]) == 2 and len(f["pretrain"]) == 5 and len(f["federated"]) == 3
        assert not set(f["heldout"]) & (set(f["pretrain"]) | set(f["federated"]))
        assert set(f["heldout"]) | set(f["pretrain"]) | set(f["federated"]) == set(users)


def test_selection_set_is_named_apart_from_the_result():
    """Scoring the federated users (the selection set) never writes over the held-out result,
    and its report says what it is; an unknown choice is refused before any training."""
    from tools.evaluate.report import SELECTION_NOTE, markdown, report_name

    summary = {"mean": 0.9, "lo": 0.8, "hi": 1.0}
    by_k = {
        "2": {
            key: summary
            for key in (
                "global_acc",
                "personal_acc",
                "local_only_acc",
                "finetune_acc",
                "imprint_first_acc",
                "personal_acc-local_only_acc",
                "personal_acc-global_acc",
                "finetune_acc-local_only_acc",
                "imprint_first_acc-local_only_acc",
            )
        }
    }
    folds = [{"float_acc": 0.9, "int8_acc": 0.9}]
    reports = {
        scored: {
            "config": {
                **EvalConfig(scored=scored).__dict__,
                "personal": {"epochs": 30, "lr": 0.1, "imprint": True},
            },
            "by_k": by_k,
            "folds": folds,
            "int8_drop_mean": 0.0,
            "users": 10,
            "wall_s": 1.0,
        }
        for scored in ("heldout", "federated")
    }
    assert report_name(reports["heldout"]) == "evaluate"
    assert report_name(reports["federated"]) == "evaluate-federated"
    assert SELECTION_NOTE not in markdown(reports["heldout"])
    assert SELECTION_NOTE in markdown(reports["federated"])
    with pytest.raises(ValueError, match="scored"):
        EvalConfig(scored="test")


def test_other_imprint_strengths_only_on_the_selection_set():
    """Held-out users are scored with the device's strength; others are for selection."""
    from tools.link.messages import TRAIN_IMPRINT_STRENGTH

    assert EvalConfig().imprint_strength == TRAIN_IMPRINT_STRENGTH
    assert EvalConfig(scored="federated", imprint_strength=2.0).imprint_strength == 2.0
    with pytest.raises(ValueError, match="federated"):
        EvalConfig(imprint_strength=2.0)
