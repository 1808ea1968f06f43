"""Distributed mode with secure aggregation (`--secagg`): the aggregator sees only the sum.

The selected devices train as usual, but their updates never leave them in the clear: the
aggregator waits for each UPDATE_READY (metadata only), checks it, and runs one SecAgg round
(tools/secagg) over the devices whose metadata is right. The devices must be enrolled with this
aggregator (`invoke provision`): every step runs over the authenticated link. What comes back
is Σ q over the round's survivors, exactly; the aggregator turns it into Σ Δ = scale · Σ q
and hands it to the usual FedAvg with the fixed denominator (distributed mode), so the release
is the same as without SecAgg — only who sees what changes (PRIVACY.md, threat model).

The store keeps, per survivor, the masked upload y it received (uniform mod 2^b: auditable
bytes, not an update) and no individual q.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tools.aggregator.keys import ensure_session
from tools.aggregator.store import UpdateRow
from tools.link.client import DeviceClient, head_sha256
from tools.link.errors import LinkError, PortGoneError, ProtocolError
from tools.link.messages import Train, UpdateReady
from tools.secagg.server import SecAggAbortError, SecAggRound

if TYPE_CHECKING:
    from tools.aggregator.core import Aggregator


@dataclass
class Trained:
    device_id: int
    ready: UpdateReady | None = None
    error: str = ""


def default_threshold(n: int) -> int:
    """t = ⌊n/2⌋ + 1: the smallest threshold a device accepts (2t > n)."""
    return n // 2 + 1


def _train_only(agg: Aggregator, client: DeviceClient, params: Train, deadline: float) -> Trained:
    """HELLO, head push, TRAIN, wait for UPDATE_READY — never UPDATE_GET."""
    try:
        if not ensure_session(client, agg.keys):
            return Trained(client.device_id, error="not enrolled: run `invoke provision`")
        info = client.hello()
        agg.store.record_device(
            client.device_id, client.transport.url, info.board_name, info.model_sha256
        )
        if info.head_sha256 != head_sha256(agg.w, agg.b):
            client.install_head(agg.w, agg.b, agg.head_version)
            agg.on_event("head_pushed", {"device": client.device_id})
        client.train(params)
        ready = client.wait_update_ready(params.round, max(0.0, deadline - time.monotonic()))
    except PortGoneError as exc:
        return Trained(client.device_id, error=f"port_gone: {exc}")
    except (LinkError, ProtocolError) as exc:
        return Trained(client.device_id, error=f"{type(exc).__name__}: {exc}")
    return Trained(client.device_id, ready)


def _metadata_problem(agg: Aggregator, ready: UpdateReady, params: Train) -> str:
    if (ready.round, ready.head_version) != (params.round, agg.head_version):
        return f"stale: round {ready.round} head {ready.head_version}"
    if ready.n_params != agg.n_params or ready.bits != params.bits:
        return f"shape: {ready.n_params} params of {ready.bits} bits"
    if np.float32(ready.scale) != np.float32(params.scale):
        return f"scale {ready.scale} differs from {params.scale}"
    return ""


def collect(
    agg: Aggregator, round_id: int, selected: list[int], params: Train
) -> tuple[list[UpdateRow], list[np.ndarray], int, int]:
    """(store rows, [Σ Δ] or [], devices in the sum, dropped) for one SecAgg round."""
    deadline = time.monotonic() + agg.config.deadline_s
    reachable = [d for d in selected if d in agg.clients and d not in agg.gone]
    with ThreadPoolExecutor(max_workers=max(1, len(reachable))) as pool:
        trained = list(
            pool.map(lambda d: _train_only(agg, agg.clients[d], params, deadline), reachable)
        )
    rows, ready = [], {}
    for t in trained:
        if t.error.startswith("port_gone"):
            agg.gone.add(t.device_id)
        problem = _metadata_problem(agg, t.ready, params) if t.ready else ""
        if problem:
            rows.append(UpdateRow(t.device_id, False, problem))
        elif t.ready is not None:
            ready[t.device_id] = t.ready
    dropped = len(selected) - len(ready) - len(rows)
    if len(ready) < 2:
        return rows, [], 0, dropped + len(ready)
    cohort = {d: agg.clients[d] for d in sorted(ready)}
    threshold = agg.config.secagg_threshold or default_threshold(len(cohort))
    try:
        result = SecAggRound(cohort, round_id, threshold, params.bits, agg.n_params).run()
    except SecAggAbortError as exc:  # nothing released; the devices keep their updates
        agg.on_event("secagg_abort", {"round": round_id, "reason": str(exc)})
        return rows, [], 0, dropped + len(ready)
    agg.on_event("secagg", {"round": round_id, "in_sum": len(result.survivors),
                            "recovered": len(result.dropped)})  # fmt: skip
    for d in result.survivors:
        r = ready[d]
        rows.append(UpdateRow(d, True, "secagg: masked, in the sum", r.bits, r.scale, r.flags,
                              r.crc32, result.uploads[d]))  # fmt: skip
    total_delta = result.total.astype(np.float64) * float(np.float32(params.scale))
    missing = len(ready) - len(result.survivors)
    return rows, [total_delta], len(result.survivors), dropped + missing
