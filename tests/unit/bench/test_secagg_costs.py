"""The issue's SecAgg budgets, from exact counts (unicorn instructions, wire-format bytes):
≤ 50 M Cortex-M4 instructions of SecAgg work per device per round at cohort 10, and a masked
64x7 update of ≤ 800 B."""

from __future__ import annotations

from tools.bench import secagg


def test_secagg_fits_the_m4_budget_at_cohort_10() -> None:
    costs = secagg.m4_costs(10, t=6)
    assert 0 < costs["round_total"] <= 50_000_000, costs
    # Key agreement dominates: X25519 is the one expensive primitive.
    assert costs["x25519_shared"] > 10 * costs["mask"]


def test_masked_update_bytes_and_modulus_rule() -> None:
    ten = secagg.bytes_per_round(10)
    assert ten["modulus_bits"] == 12 and ten["masked_update_bytes"] == (455 * 12 + 7) // 8
    assert ten["masked_update_bytes"] <= 800
    assert secagg.bytes_per_round(100)["modulus_bits"] == 15
