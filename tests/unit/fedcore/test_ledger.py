"""The device's ledger (fedcore/ledger.c) equals its Python twin (tools/fedref/ledger.py), and
both equal dp-accounting's RdpAccountant for the same releases; the device's policy
(fedcore/policy.c) gives the same verdicts as tools/fedref/policy.py."""

from __future__ import annotations

import itertools
import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant

from tests.unit.fedcore import cdriver
from tools.fedref import ledger as fledger
from tools.fedref.policy import Policy
from tools.link.messages import NackCode

P = 455  # the watch head: 64 x 7 + 7
DELTA = 1e-5
# (clip, noise_std, scale, n_params, round): local-DP-like releases on the usual grid C/4096.
RELEASES = [
    (1.0, 1.0, 1 / 4096, P, 1),
    (1.0, 2.0, 1 / 4096, P, 2),
    (0.5, 0.75, 0.5 / 4096, P, 5),
    (2.0, 8.0, 2 / 1024, P, 6),
    (1.0, 1.0, 1 / 65536, 70, 9),
    # the 8-bit grid of the scale rule, where conditional rounding sets the sensitivity
    (4.0, 4.0, 24 / 127, 343, 11),
    (4.0, 8.0, 4.0 / 16, P, 12),
]


def _dp_accounting_epsilon(releases: list[tuple], delta: float) -> float:
    """RdpAccountant on the same orders, one GaussianDpEvent per release with the noise
    multiplier sigma / sensitivity in grid units (where the device adds the noise)."""
    accountant = RdpAccountant(orders=list(fledger.ORDERS))
    for clip, std, scale, n, _ in releases:
        sigma = float(np.float32(std)) / float(np.float32(scale))
        z = sigma / fledger.sensitivity_grid(clip, scale, n)
        accountant.compose(dp_accounting.GaussianDpEvent(z))
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("count", [1, 2, len(RELEASES)])
def test_c_ledger_equals_python_twin_and_dp_accounting(count: int) -> None:
    releases = RELEASES[:count]
    run = cdriver.ledger(releases, DELTA)
    twin = fledger.Ledger()
    for clip, std, scale, n, round_id in releases:
        twin.add(round_id, fledger.release_rho(clip, std, scale, n))
    py_rhos = [fledger.release_rho(c, s, q, n) for c, s, q, n, _ in releases]
    np.testing.assert_allclose(run.rhos, py_rhos, rtol=1e-13)
    assert run.total_rho == pytest.approx(twin.rho, rel=1e-13)
    assert run.epsilon == pytest.approx(twin.epsilon(DELTA), rel=1e-12)
    assert run.epsilon == pytest.approx(_dp_accounting_epsilon(releases, DELTA), rel=1e-9)
    assert run.decode_status == 0
    assert run.decoded == (count, releases[-1][4], run.total_rho)


def test_one_local_release_costs_what_the_gaussian_mechanism_says() -> None:
    """Sanity against the textbook: z = sigma / (2C) about 0.5 gives rho about 2 per release."""
    rho = fledger.release_rho(1.0, 1.0, 1 / 4096, P)
    assert 2.0 < rho < 2.0 * (1 + 2 * math.sqrt(P) / 4096) ** 2 * 1.001
    assert 10 < fledger.epsilon(rho, DELTA) < 12


@pytest.mark.parametrize(
    ("z", "eps_16", "eps_8"), [(1.0, 10.77, 12.35), (2.0, 4.75, 5.83), (4.0, 2.17, 2.65)]
)
def test_production_release_costs_the_documented_epsilon(z, eps_16, eps_8) -> None:
    """docs/PRIVACY.md's table: clip 4 (CLIP_MAX), σ = z·C, the watch head (P = 343), on the
    16-bit grid C/4096 and on the default 8-bit grid of the scale rule; C agrees."""
    from tools.fedref.privacy import quantization_scale

    clip, watch = 4.0, 48 * 7 + 7
    for scale, expected in ((clip / 4096, eps_16), (quantization_scale(clip, z * clip, 8), eps_8)):
        run = cdriver.ledger([(clip, z * clip, scale, watch, 1)], DELTA)
        assert run.epsilon == pytest.approx(expected, abs=0.005)
        assert run.epsilon == pytest.approx(
            fledger.epsilon(fledger.release_rho(clip, z * clip, scale, watch), DELTA), rel=1e-12
        )


def test_small_grid_noise_charges_the_discreteness_term_in_both_twins() -> None:
    """sigma of 0.8 grid steps: tau of the multivariate discrete Gaussian is not negligible."""
    releases = [(1.0, 0.8 / 8, 1 / 8, P, 1)]
    run = cdriver.ledger(releases, DELTA)
    sigma = 0.8
    plain = fledger.sensitivity_grid(1.0, 1 / 8, P) ** 2 / (2 * sigma**2)
    assert run.rhos[0] > plain * 1.0001
    assert run.rhos[0] == pytest.approx(fledger.release_rho(*releases[0][:4]), rel=1e-13)


def test_no_noise_or_no_clip_is_infinitely_expensive() -> None:
    run = cdriver.ledger([(1.0, 0.0, 1 / 4096, P, 1)], DELTA)
    assert math.isinf(run.epsilon) and math.isinf(fledger.release_rho(0.0, 1.0, 1 / 4096, P))


def test_policy_verdicts_match_the_python_twin() -> None:
    policy = Policy.production()
    clips = [0.0, 0.5, 4.0, 4.5]
    zs = [0.0, 0.5, 1.0, 2.0]
    scales_rel = [2.0**-20, 2.0**-12, 2.0**-4, 0.5]
    bits = [8, 16, 32, 12]
    epochs = [1, 32, 33]
    queries = [
        (c, z * c, max(c, 1.0) * s, b, e, 256)
        for c, z, s, b, e in itertools.product(clips, zs, scales_rel, bits, epochs)
    ]
    verdicts = cdriver.policy_verdicts(queries)
    expected = [policy.check(c, n, s, b, e, cap) for c, n, s, b, e, cap in queries]
    assert verdicts == [int(v) if v is not None else 0 for v in expected]
    assert set(verdicts) == {
        0,
        *map(
            int,
            (
                NackCode.POLICY_CLIP,
                NackCode.POLICY_NOISE,
                NackCode.POLICY_QUANT,
                NackCode.POLICY_WORK,
            ),
        ),
    }
