"""The bench report schema rejects missing, mistyped and non-finite figures."""

from __future__ import annotations

import copy
from typing import Any

from tools.bench.schema import SCHEMA, validate


def _complete_report() -> dict[str, Any]:
    def fill(kind: Any) -> Any:
        if isinstance(kind, dict):
            return {key: fill(sub) for key, sub in kind.items()}
        return 1.5 if kind == "number" else "x"

    report = {section: fill(keys) for section, keys in SCHEMA.items()}
    report["demo"] = {"phases_s": {"train": 3.0, "rounds": 4.0}}
    return report


def test_complete_report_passes() -> None:
    assert validate(_complete_report()) == []


def test_missing_section_and_key_are_named() -> None:
    report = _complete_report()
    del report["link"]
    del report["backbone"]["host_speedup"]
    problems = validate(report)
    assert "link: missing section" in problems
    assert "backbone.host_speedup: missing" in problems


def test_non_finite_and_non_numeric_values_are_rejected() -> None:
    report = _complete_report()
    report["head"]["m4_instr_per_example"]["64x7"] = float("nan")
    report["aggregator"]["round_s_32_host_devices"] = "fast"
    report["demo"]["phases_s"]["train"] = float("inf")
    broken = copy.deepcopy(report)
    problems = validate(broken)
    assert any(p.startswith("head.m4_instr_per_example.64x7: not finite") for p in problems)
    assert any(p.startswith("aggregator.round_s_32_host_devices: expected a number")
               for p in problems)
    assert any(p.startswith("demo.phases_s: not finite") for p in problems)
