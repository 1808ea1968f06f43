"""Aggregator: drives rounds over DeviceClients and commits each round to the store.

    store = Store("build/aggregator/run.sqlite")
    agg = Aggregator(store, AggregatorConfig(rounds=10, privacy=PrivacyMode.CENTRAL),
                     devices=[DeviceClient.open(url) for url in urls],
                     initial_head=(w0, b0), holdout=Holdout(emb, labels),
                     enrollment={device_id: user_id, ...})
    record = agg.run_round()        # one round, committed; or agg.run() for config.rounds

A round: plan the sampling over the registered population (store enrollment), refuse before
any TRAIN if even a full round would exceed the ε budget, Poisson-sample units from a CSPRNG,
push the global head where a device's head_sha256 differs, TRAIN, collect updates until the
deadline (one thread per device; selected devices that are not connected are dropouts),
validate each, then release a new head only if something arrived and the event that actually
ran fits the budget: sum, central noise, fixed denominator, server optimizer, holdout
evaluation, accountant event — committed in one transaction. A round that releases nothing
is committed as empty / too_few / refused and charges nothing.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from tools.aggregator import privacy, sampling
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.evaluate import Holdout, evaluate
from tools.aggregator.store import RoundRow, Store, UpdateRow
from tools.aggregator.strategy import ServerOptimizer, combine
from tools.aggregator.validation import Expected, validate
from tools.link import messages as m
from tools.link.client import DeviceClient, FetchedUpdate, head_sha256
from tools.link.errors import LinkError, PortGoneError
from tools.link.messages import Train

FIXED_DENOMINATOR = (PrivacyMode.CENTRAL, PrivacyMode.DISTRIBUTED)


@dataclass
class Outcome:
    """What one selected device's worker brought back."""

    device_id: int
    update: FetchedUpdate | None = None
    error: str = ""
    late: bool = False


@dataclass
class DeviceRound:
    """One device's part of a round over its own serial link (see `device_round`)."""

    info: m.Info | None = None
    update: FetchedUpdate | None = None
    error: str = ""
    late: bool = False
    head_pushed: bool = False


def device_seed(round_seed: int, device_id: int) -> int:
    """The u64 seed of one device's seeded TRAIN: distinct per device, reproducible per round."""
    digest = hashlib.sha256(struct.pack("<QI", round_seed, device_id)).digest()
    return int.from_bytes(digest[:8], "little")


def device_round(
    client: DeviceClient,
    w: np.ndarray,
    b: np.ndarray,
    head_version: int,
    params: Train,
    deadline: float,
) -> DeviceRound:
    """HELLO, push the head if the device's hash differs, TRAIN, fetch the update by `deadline`
    (time.monotonic). The one implementation of the device side of a round: the built-in engine
    runs it in a thread per port, a Flower gateway (tools/flower/bridge.py) next to its board."""
    result = DeviceRound()
    try:
        result.info = client.hello()
        if result.info.head_sha256 != head_sha256(w, b):
            client.install_head(w, b, head_version)
            result.head_pushed = True
        if params.flags & m.TRAIN_USE_SEED:  # replay profile: per-device reproducible noise
            params = replace(params, seed=device_seed(params.seed, client.device_id))
        client.train(params)
        result.update = client.fetch_update(
            params.round, timeout=max(0.0, deadline - time.monotonic())
        )
    except PortGoneError as exc:
        result.error = f"port_gone: {exc}"
    except LinkError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.late = result.update is not None and time.monotonic() > deadline
    return result


class Aggregator:
    """See the module docstring. `on_event(kind, detail)` reports progress to a UI (the
    operator's console: it may show counts, never goes into a published artifact)."""

    def __init__(
        self,
        store: Store,
        config: AggregatorConfig,
        devices: list[DeviceClient],
        initial_head: tuple[np.ndarray, np.ndarray] | None = None,
        holdout: Holdout | None = None,
        on_event: Callable[[str, dict], None] | None = None,
        enrollment: dict[int, str] | None = None,
    ) -> None:
        config.check()
        self.store, self.config, self.devices = store, config, devices
        self.holdout = holdout
        self.on_event = on_event or (lambda kind, detail: None)
        self.gone: set[int] = set()  # device ids whose port vanished
        self.device_ledger: dict[int, float] = {}  # ε the firmware reports in INFO (eps_spent)
        self._resume_or_start(initial_head)
        self.clients = self._identify(devices)
        self._register(enrollment)

    def _resume_or_start(self, initial_head: tuple[np.ndarray, np.ndarray] | None) -> None:
        stored = self.store.get_meta("config")
        if stored is None:
            self.store.set_meta("config", self.config.as_dict())
        if self.store.latest_head() is None:
            if initial_head is None:
                raise ValueError("a new store needs initial_head=(w, b)")
            self.store.ensure_initial_head(*initial_head)
        version, self.w, self.b = self.store.latest_head()  # type: ignore[misc]
        self.head_version = version
        self.round = self.store.last_round()
        self.optimizer = ServerOptimizer(self.config, self.n_params, self.store.server_state())

    def _identify(self, devices: list[DeviceClient]) -> dict[int, DeviceClient]:
        """device id → client; a port that does not answer HELLO now is simply not connected."""
        clients = {}
        for client in devices:
            try:
                client.hello()
            except LinkError as exc:
                self.on_event("unreachable", {"url": client.transport.url, "error": str(exc)})
                continue
            clients[client.device_id] = client
        return clients

    def _register(self, enrollment: dict[int, str] | None) -> None:
        """Enroll the given mapping; a store with no enrollment at all registers the connected
        devices, each as its own user (device-level: say so in reports)."""
        if enrollment:
            self.store.enroll(enrollment)
        if not self.store.enrollment():
            self.store.enroll({d: f"device-{d}" for d in self.clients})
            self.on_event("enrolled", {"devices": len(self.clients), "source": "connected"})
        self.store.set_meta("device_ledger", {})

    @property
    def n_params(self) -> int:
        return int(self.w.size + self.b.size)

    def population(self) -> sampling.Population:
        return sampling.Population.from_enrollment(self.store.enrollment(), self.config.unit)

    @property
    def epsilon(self) -> float:
        return privacy.ledger_epsilon(self.config, self.store.events())

    def run(self, rounds: int | None = None) -> list[RoundRow]:
        """Run until `rounds` (default config.rounds) are committed in total."""
        target = rounds if rounds is not None else self.config.rounds
        records = []
        while self.round < target:
            records.append(self.run_round())
        return records

    def run_round(self) -> RoundRow:
        """Run and commit the next round; raises BudgetExceededError before any TRAIN when even
        a round where every selected device answers would exceed the budget."""
        round_id, started = self.round + 1, time.time()
        plan = sampling.plan(self.config, self.population())
        if plan.note:
            self.on_event("sampling", {"note": plan.note, "q": plan.q})
        privacy.check_budget(
            self.config, self.store.events(), self._event(plan, plan.expected_devices)
        )
        selected = sampling.poisson_sample(self.population(), plan.q)
        sigma = privacy.device_noise_std(self.config, plan.expected_devices)
        self.on_event("round_start", {"round": round_id, "selected": len(selected)})
        outcomes = self._collect(round_id, selected, sigma)
        rows, deltas = self._validate(round_id, outcomes, sigma)
        event = self._event(plan, len(deltas))
        outcome = self._release_decision(len(deltas), event)
        new_head = self._aggregate(deltas, plan) if outcome == "released" else None
        charged = event if outcome == "released" else None
        record = RoundRow(
            round=round_id,
            head_in=self.head_version,
            head_out=self.head_version + (new_head is not None),
            started=started,
            cohort=selected,
            updates=rows,
            dropped=sum(1 for o in outcomes if o.update is None),
            epsilon=privacy.ledger_epsilon(
                self.config, [*self.store.events(), *([charged] if charged else [])]
            ),
            event=charged,
            server_state=self.optimizer.state(),
            outcome=outcome,
            device_noise_std=sigma,
        )
        if new_head is not None:
            self.w, self.b = new_head
        record.metrics = self._metrics(outcomes, rows)
        self.store.commit_round(record, new_head)
        self.store.set_meta("device_ledger", {str(k): v for k, v in self.device_ledger.items()})
        self.round, self.head_version = round_id, record.head_out
        self.on_event(
            "round_end",
            {"round": round_id, "outcome": outcome, "epsilon": record.epsilon, **record.metrics},
        )
        return record

    def _event(self, plan: sampling.SamplingPlan, received: float) -> privacy.RoundEvent | None:
        return privacy.round_event(
            self.config,
            plan.q,
            plan.expected_devices,
            received,
            self.n_params,
            plan.devices_per_unit,
        )

    def _release_decision(self, received: int, event: privacy.RoundEvent | None) -> str:
        """ "released", or why nothing is: no update arrived, fewer than --min-updates, or the
        event that actually ran (dropouts included) would push ε past the budget."""
        if received == 0:
            return "empty"
        if received < max(1, self.config.min_updates):
            return "too_few"
        if event is not None:
            after = privacy.ledger_epsilon(self.config, [*self.store.events(), event])
            if after > self.config.epsilon_budget:
                return "refused"
        return "released"

    # ---- collection ---------------------------------------------------------------------------

    def _train_params(self, round_id: int, noise_std: float) -> Train:
        c = self.config
        return Train(
            round=round_id,
            lr=c.lr,
            epochs=c.epochs,
            batch=c.batch,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
            example_clip=c.example_clip,
            clip=c.clip,
            noise_std=noise_std,
            scale=c.quant_scale,
            bits=c.bits,
            flags=m.TRAIN_USE_SEED if c.train_seed else 0,
            seed=device_seed(c.train_seed, round_id) if c.train_seed else 0,
        )

    def _collect(self, round_id: int, selected: list[int], noise_std: float) -> list[Outcome]:
        """Ask every selected device; one that is not connected is a dropout like a silent one."""
        params = self._train_params(round_id, noise_std)
        deadline = time.monotonic() + self.config.deadline_s
        reachable = [d for d in selected if d in self.clients and d not in self.gone]
        with ThreadPoolExecutor(max_workers=max(1, len(reachable))) as pool:
            futures = {
                d: pool.submit(self._work, self.clients[d], params, deadline) for d in reachable
            }
            outcomes = [
                futures[d].result() if d in futures else Outcome(d, error="not connected")
                for d in selected
            ]
        for outcome in outcomes:
            if outcome.error.startswith("port_gone"):
                self.gone.add(outcome.device_id)
        return outcomes

    def _work(self, client: DeviceClient, params: Train, deadline: float) -> Outcome:
        """One device: refresh INFO, push the head if its hash differs, TRAIN, fetch."""
        result = device_round(client, self.w, self.b, self.head_version, params, deadline)
        if result.info is not None:
            self.record_device(client.device_id, client.transport.url, result.info)
        if result.head_pushed:
            self.on_event("head_pushed", {"device": client.device_id})
        return Outcome(client.device_id, result.update, result.error, result.late)

    def record_device(self, device_id: int, url: str, info: m.Info) -> None:
        """Store what the device says about itself, and its own ε ledger when it keeps one."""
        self.store.record_device(device_id, url, info.board_name, info.model_sha256)
        ledger = getattr(info, "eps_spent", None)  # firmware with a privacy ledger
        if ledger is not None:
            self.device_ledger[device_id] = float(ledger)

    # ---- validation and aggregation -------------------------------------------------------------

    def _expected(self, round_id: int, noise_std: float) -> Expected:
        params = self._train_params(round_id, noise_std)
        return Expected(
            round_id,
            self.head_version,
            self.n_params,
            params.clip,
            float(np.float32(params.scale)),
            params.bits,
            params.noise_std,
        )

    def _validate(
        self, round_id: int, outcomes: list[Outcome], noise_std: float
    ) -> tuple[list[UpdateRow], list[np.ndarray]]:
        expected = self._expected(round_id, noise_std)
        accepted_devices: set[int] = set()
        rows, deltas = [], []
        for outcome in outcomes:
            if outcome.update is None:
                continue
            row, delta = self.check_update(
                outcome.update, expected, accepted_devices, late=outcome.late
            )
            rows.append(row)
            if delta is not None:
                accepted_devices.add(row.device_id)
                deltas.append(delta)
        return rows, deltas

    @staticmethod
    def check_update(
        update: FetchedUpdate, expected: Expected, accepted_devices: set[int], late: bool = False
    ) -> tuple[UpdateRow, np.ndarray | None]:
        """Validate one fetched update into a store row (+ its Δ when accepted)."""
        ready = update.ready
        verdict = validate(ready, update.data, expected, accepted_devices, update.device_id)
        reason = verdict.reason
        if verdict.accepted and late:
            reason = "late: arrived after the round deadline"
        accepted = verdict.accepted and not late
        row = UpdateRow(
            update.device_id,
            accepted,
            reason,
            ready.bits,
            ready.scale,
            ready.flags,
            ready.crc32,
            update.data if accepted else None,
        )
        return row, verdict.delta if accepted else None

    def _aggregate(
        self, deltas: list[np.ndarray], plan: sampling.SamplingPlan
    ) -> tuple[np.ndarray, np.ndarray]:
        stacked = np.stack(deltas)
        noise = privacy.central_noise(self.config, stacked.shape[1])
        denominator = plan.expected_devices if self.config.privacy in FIXED_DENOMINATOR else 0.0
        mean = combine(stacked, self.config, noise, denominator)
        params = np.concatenate([self.w.ravel(), self.b]).astype(np.float64)
        new = self.optimizer.step(params, mean).astype(np.float32)
        d, c = self.w.shape
        return new[: d * c].reshape(d, c), new[d * c :]

    def _metrics(self, outcomes: list[Outcome], rows: list[UpdateRow]) -> dict:
        """Operator counts (stored, never published) and the holdout score of the head."""
        accepted = sum(r.accepted for r in rows)
        metrics: dict = {
            "accepted": accepted,
            "rejected": len(rows) - accepted,
            "dropped": sum(1 for o in outcomes if o.update is None),
        }
        if self.holdout is not None:
            metrics.update(
                {f"holdout_{k}": v for k, v in evaluate(self.w, self.b, self.holdout).items()}
            )
        return metrics
