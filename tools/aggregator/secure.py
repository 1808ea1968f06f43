"""Distributed mode with secure aggregation (`--secagg`): the aggregator sees only the sum.

The selected devices train as usual, but their updates never leave them in the clear: the
aggregator waits for each UPDATE_READY (metadata only), checks it, and runs one SecAgg round
(tools/secagg) over the devices whose metadata is right. The devices must be enrolled with this
aggregator (`invoke provision`): every step runs over the authenticated link. What comes back
is Σ q over the round's survivors, exactly; the aggregator turns it into Σ Δ = scale · Σ q
and hands it to the usual FedAvg with the fixed denominator (distributed mode), so the release
is the same as without SecAgg — only who sees what changes (PRIVACY.md, threat model).

`secure_round` is that logic for every engine: the built-in one (`collect`, serial clients on
this machine) and the Flower ServerApp (tools/flower/server_app.py, each SecAgg step one
relayed message fan-out to the gateways) differ only in how devices train and are reached.

The store keeps, per survivor, the masked upload y it received (uniform mod 2^b: auditable
bytes, not an update) and no individual q.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tools.aggregator.keys import ensure_session
from tools.aggregator.store import UpdateRow
from tools.link.client import DeviceClient, FetchedUpdate
from tools.link.errors import LinkError
from tools.link.messages import Capability, Info, Train, UpdateReady
from tools.secagg.server import ClientExchange, Exchange, SecAggAbortError, SecAggRound

if TYPE_CHECKING:
    from tools.aggregator.core import Aggregator, Outcome, RoundEngine, RoundPlan


def _outcome(device_id: int, update: FetchedUpdate | None = None, error: str = "") -> Outcome:
    from tools.aggregator.core import Outcome as RuntimeOutcome  # core imports this module

    return RuntimeOutcome(device_id, update, error)


@dataclass
class Secured:
    """What a SecAgg round hands to RoundEngine.finish_round."""

    rows: list[UpdateRow]
    deltas: list[np.ndarray]  # [Σ Δ] when the round produced a sum, else []
    in_sum: int  # devices whose update is in the sum


def default_threshold(n: int) -> int:
    """t = ⌊n/2⌋ + 1: the smallest threshold a device accepts (2t > n)."""
    return n // 2 + 1


def _train_only(agg: Aggregator, client: DeviceClient, params: Train, deadline: float) -> Outcome:
    """The round's device side (core.device_round) without UPDATE_GET: the Outcome carries
    the UPDATE_READY metadata only (data b"")."""
    from tools.aggregator.core import device_round  # core imports this module

    device_id = client.device_id
    try:
        if not ensure_session(client, agg.keys):
            return _outcome(device_id, error="not enrolled with this aggregator: invoke provision")
    except LinkError as exc:
        return _outcome(device_id, error=f"{type(exc).__name__}: {exc}")

    def admit(info: Info) -> str:
        agg.store.record_device(device_id, client.transport.url, info.board_name,
                                info.model_sha256)  # fmt: skip
        return agg.admit_device(device_id, info)

    result = device_round(
        client, agg.w, agg.b, agg.head_version, params, deadline, admit, fetch=False
    )
    if result.head_pushed:
        agg.on_event("head_pushed", {"device": device_id})
    ledger = result.info is not None and result.info.has(Capability.LEDGER)
    if result.update is not None and ledger:
        agg.note_device_ledger(device_id, result.update.ready)
    return _outcome(device_id, result.update, result.error)


def _metadata_problem(agg: RoundEngine, ready: UpdateReady, params: Train) -> str:
    if (ready.round, ready.head_version) != (params.round, agg.head_version):
        return f"stale: round {ready.round} head {ready.head_version}"
    if ready.n_params != agg.n_params or ready.bits != params.bits:
        return f"shape: {ready.n_params} params of {ready.bits} bits"
    if np.float32(ready.scale) != np.float32(params.scale):
        return f"scale {ready.scale} differs from {params.scale}"
    return ""


def collect(agg: Aggregator, plan: RoundPlan) -> tuple[list[Outcome], Secured]:
    """Built-in engine: train the selected devices on their serial ports (one thread each),
    then `secure_round` over their DeviceClients."""
    params = plan.train
    deadline = time.monotonic() + agg.config.deadline_s
    reachable = [d for d in plan.selected if d in agg.clients and d not in agg.gone]
    with ThreadPoolExecutor(max_workers=max(1, len(reachable))) as pool:
        trained = dict(
            zip(
                reachable,
                pool.map(lambda d: _train_only(agg, agg.clients[d], params, deadline), reachable),
                strict=True,
            )
        )
    outcomes = [trained.get(d, _outcome(d, error="not connected")) for d in plan.selected]
    for o in outcomes:
        if o.error.startswith("port_gone"):
            agg.gone.add(o.device_id)
    return secure_round(
        agg, plan, outcomes, lambda ids: ClientExchange({d: agg.clients[d] for d in ids})
    )


def secure_round(
    engine: RoundEngine,
    plan: RoundPlan,
    trained: list[Outcome],
    exchange: Callable[[list[int]], Exchange],
) -> tuple[list[Outcome], Secured]:
    """The round logic of every engine once the devices trained: `trained` holds each selected
    device's UPDATE_READY (FetchedUpdate with no data) or why none came; one SecAgg round runs
    over those whose metadata is right, through `exchange(device ids)` (serial clients, or a
    Flower relay). Outcomes: the masked upload for each device in the sum, an error for every
    other."""
    params = plan.train
    rows, ready = [], {}
    for o in trained:
        if o.update is None:
            continue
        problem = _metadata_problem(engine, o.update.ready, params)
        if problem:
            rows.append(UpdateRow(o.device_id, False, problem))
        else:
            ready[o.device_id] = o.update.ready
    secured = Secured(rows, [], 0)
    if len(ready) >= 2:
        secured = _secure_sum(engine, plan, ready, rows, exchange(sorted(ready)))
    in_sum = {r.device_id for r in secured.rows if r.accepted}
    rejected = {r.device_id for r in rows}
    final = [
        o if o.device_id in in_sum | rejected or o.update is None
        else _outcome(o.device_id, error="secagg: not in the sum (dropped out or round aborted)")
        for o in trained
    ]  # fmt: skip
    return final, secured


def sum_digest(total: np.ndarray) -> str:
    """A short digest of Σ q (int64, little-endian) for the operator's log: lets a test or an
    auditor holding the opened updates check the sum bit for bit without the log showing it."""
    return hashlib.sha256(np.asarray(total, dtype="<i8").tobytes()).hexdigest()[:16]


def secured_sum(total: np.ndarray, scale: float, rows: list[UpdateRow], in_sum: int) -> Secured:
    """What finish_round gets from a SecAgg round whose sum Σ q over `in_sum` devices is
    `total`: Σ Δ = scale · Σ q (scale as the device used it, float32)."""
    return Secured(rows, [total.astype(np.float64) * float(np.float32(scale))], in_sum)


def _secure_sum(
    engine: RoundEngine,
    plan: RoundPlan,
    ready: dict[int, UpdateReady],
    rows: list[UpdateRow],
    exchange: Exchange,
) -> Secured:
    cohort = sorted(ready)
    threshold = engine.secagg_threshold(plan, len(cohort))  # ≥ t, the noise calibration
    try:
        result = SecAggRound(
            cohort, plan.round, threshold, plan.train.bits, engine.n_params, exchange=exchange
        ).run()
    except SecAggAbortError as exc:  # nothing released; the devices keep their updates
        engine.on_event("secagg_abort", {"round": plan.round, "reason": str(exc)})
        return Secured(rows, [], 0)
    engine.on_event("secagg", {"round": plan.round, "in_sum": len(result.survivors),
                               "recovered": len(result.dropped),
                               "sum_sha256": sum_digest(result.total)})  # fmt: skip
    for d in result.survivors:
        r = ready[d]
        rows.append(UpdateRow(d, True, "secagg: masked, in the sum", r.bits, r.scale, r.flags,
                              r.crc32, result.uploads[d]))  # fmt: skip
    return secured_sum(result.total, plan.train.scale, rows, len(result.survivors))
