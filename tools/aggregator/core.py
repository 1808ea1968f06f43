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
ran fits the budget: sum, the aggregator's noise (central: all of it; distributed: the top-up
to K device shares, so the release does not depend on who arrived), fixed denominator, server
optimizer, holdout evaluation, accountant event — committed in one transaction. A round
that releases nothing is committed as empty / too_few / refused and charges nothing.

`RoundEngine` is that logic without I/O (plan_round → ask → finish_round), for other
transports; `Aggregator` drives it over serial DeviceClients.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from tools.aggregator import privacy, sampling, secure
from tools.aggregator.config import AggregatorConfig, PrivacyMode
from tools.aggregator.evaluate import Holdout, evaluate
from tools.aggregator.keys import KeyStore, ensure_session
from tools.aggregator.store import RoundRow, Store, UpdateRow
from tools.aggregator.strategy import ServerOptimizer, combine
from tools.aggregator.validation import Expected, validate
from tools.link.client import DeviceClient, FetchedUpdate, head_sha256
from tools.link.errors import LinkError, PortGoneError
from tools.link.messages import TRAIN_USE_SEED, Capability, Info, Train

FIXED_DENOMINATOR = (PrivacyMode.CENTRAL, PrivacyMode.DISTRIBUTED)
REPLAY_REFUSED = (
    "replay_board: a replay-profile board (host windows, SEED, seeded TRAIN; no device privacy "
    "policy) takes part only in a run declared a simulation (--simulation)"
)


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

    info: Info | None = None
    update: FetchedUpdate | None = None
    error: str = ""
    late: bool = False
    head_pushed: bool = False


def device_seed(round_seed: int, device_id: int) -> int:
    """The u64 seed of one device's seeded TRAIN: distinct per device, reproducible per round."""
    digest = hashlib.sha256(struct.pack("<QI", round_seed, device_id)).digest()
    return int.from_bytes(digest[:8], "little")


def device_train(params: Train, device_id: int) -> Train:
    """The TRAIN one device is sent: a seeded TRAIN (replay profile) gets a per-device seed,
    so each device's noise is reproducible and distinct."""
    if params.flags & TRAIN_USE_SEED:
        return replace(params, seed=device_seed(params.seed, device_id))
    return params


def device_round(
    client: DeviceClient,
    w: np.ndarray,
    b: np.ndarray,
    head_version: int,
    params: Train,
    deadline: float,
    admit: Callable[[Info], str] | None = None,
    fetch: bool = True,
) -> DeviceRound:
    """HELLO, ask `admit(info)` (a refusal ends the round for this device before TRAIN), push
    the head if the device's hash differs, TRAIN, fetch the update by `deadline`
    (time.monotonic). The one implementation of the device side of a round: the built-in engine
    runs it in a thread per port, a Flower gateway (tools/flower/bridge.py) next to its board.
    With fetch=False (secure aggregation) only UPDATE_READY is awaited: the update itself then
    leaves the device masked (tools/aggregator/secure.py), and `update.data` is empty."""
    result = DeviceRound()
    try:
        result.info = client.hello()
        refusal = admit(result.info) if admit is not None else ""
        if refusal:
            result.error = refusal
            return result
        if result.info.head_sha256 != head_sha256(w, b):
            client.install_head(w, b, head_version)
            result.head_pushed = True
        params = device_train(params, client.device_id)
        client.train(params)
        timeout = max(0.0, deadline - time.monotonic())
        if fetch:
            result.update = client.fetch_update(params.round, timeout=timeout)
        else:
            ready = client.wait_update_ready(params.round, timeout)
            result.update = FetchedUpdate(ready, b"", client.device_id)
    except PortGoneError as exc:
        result.error = f"port_gone: {exc}"
    except LinkError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.late = result.update is not None and time.monotonic() > deadline
    return result


@dataclass(frozen=True)
class RoundPlan:
    """Everything fixed before anyone is asked: who is selected and what they are told."""

    round: int
    started: float
    sampling: sampling.SamplingPlan
    selected: list[int]  # device ids: never published
    train: Train
    expected: Expected


class RoundEngine:
    """The round logic without I/O (the serial `Aggregator` below and other transports, e.g.
    a Flower ServerApp, drive it): `plan_round()` → ask plan.selected with plan.train →
    `finish_round(plan, outcomes)` validates, decides, releases, accounts and commits."""

    def __init__(
        self,
        store: Store,
        config: AggregatorConfig,
        initial_head: tuple[np.ndarray, np.ndarray] | None = None,
        holdout: Holdout | None = None,
        on_event: Callable[[str, dict], None] | None = None,
        enrollment: dict[int, str] | None = None,
    ) -> None:
        config.check()
        self.store, self.config, self.holdout = store, config, holdout
        self.on_event = on_event or (lambda kind, detail: None)
        self.device_ledger: dict[int, float] = {}  # ε each device's own ledger reports (INFO)
        self._resume_or_start(initial_head)
        if enrollment:
            self.store.enroll(enrollment)
        self.store.set_meta("device_ledger", {})

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

    def enroll_if_empty(self, device_ids: list[int]) -> None:
        """With no enrollment at all, register these devices, each as its own user (reports
        then say device-level)."""
        if not self.store.enrollment():
            self.store.enroll({d: f"device-{d}" for d in device_ids})
            self.on_event("enrolled", {"devices": len(device_ids), "source": "connected"})

    def admit_device(self, device_id: int, info: Info) -> str:
        """Record the profile and own ledger a device announced in INFO; return why it may not
        take part ("" when it may): replay-profile boards only in a declared simulation.
        Every transport calls this with the device's INFO before it sends TRAIN."""
        self.store.record_profile(
            device_id, info.profile_name, info.epsilon_spent, info.epsilon_budget, info.releases
        )
        if info.has(Capability.LEDGER):
            self.note_device_ledger(device_id, info)
        if info.is_replay and not self.config.simulation:
            return REPLAY_REFUSED
        return ""

    def note_device_ledger(self, device_id: int, message: object) -> None:
        """Keep the ε a device reports from its own ledger (INFO and UPDATE_READY of firmware
        with a privacy ledger carry `epsilon_spent`); older firmware reports none."""
        for name in ("epsilon_spent", "eps_spent"):
            value = getattr(message, name, None)
            if value is not None:
                self.device_ledger[device_id] = float(value)
                return

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
        """One round over the transport that drives this engine (defined by each driver)."""
        raise NotImplementedError

    def plan_round(self) -> RoundPlan:
        """Sample the next round; raises BudgetExceededError when even a round where every
        selected device answers would exceed the budget (then nobody is asked)."""
        population = self.population()
        plan = sampling.plan(self.config, population)
        sampling.check_cap(plan, self.config.delta)
        if plan.note:
            self.on_event("sampling", {"note": plan.note, "q": plan.q})
        privacy.check_budget(self.config, self.store.events(), self._event(plan, plan.cap))
        round_id = self.round + 1
        train = self._train_params(round_id, privacy.plan_noise_std(self.config, plan))
        return RoundPlan(
            round_id,
            time.time(),
            plan,
            sampling.poisson_sample(population, plan.q, plan.cap),
            train,
            self._expected(train),
        )

    def secagg_threshold(self, plan: RoundPlan, devices: int) -> int:
        """The Shamir threshold of a SecAgg round over `devices`: at least t, the share count
        the device noise is calibrated to (privacy.noise_shares), and more than half of them
        (a device refuses 2t ≤ n). Every SecAgg transport must use it: a sum of fewer than t
        shares would give the aggregator less noise than its figure assumes."""
        floor = privacy.noise_shares(self.config, plan.sampling)[1]
        return max(floor, secure.default_threshold(devices))

    def finish_round(
        self, plan: RoundPlan, outcomes: list[Outcome], secured: secure.Secured | None = None
    ) -> RoundRow:
        """Validate what came back, release a head only if the event that ran fits the
        budget, account, and commit the round in one transaction. With SecAgg (`secured`)
        the rows and the one summed Δ come from the SecAgg round instead."""
        if secured is None:
            rows, deltas = self._validate(outcomes, plan.expected)
        else:
            rows, deltas = secured.rows, secured.deltas
        received = len(deltas) if secured is None else secured.in_sum
        event = self._event(plan.sampling, received)
        outcome = self._release_decision(received, event)
        if secured is not None and 0 < received < self.secagg_threshold(plan, 0):
            outcome = "too_few"  # a transport summed fewer than t shares: never released
        if secured is not None and received and outcome != "released":
            # The aggregator saw this round's sum although nothing is released or charged.
            seen = int(self.store.get_meta("secagg_unreleased_sums") or 0)
            self.store.set_meta("secagg_unreleased_sums", seen + 1)
        new_head = (
            self._aggregate(deltas, plan.sampling, received) if outcome == "released" else None
        )
        charged = event if outcome == "released" else None
        record = RoundRow(
            round=plan.round,
            head_in=self.head_version,
            head_out=self.head_version + (new_head is not None),
            started=plan.started,
            cohort=plan.selected,
            updates=rows,
            dropped=sum(1 for o in outcomes if o.update is None),
            epsilon=privacy.ledger_epsilon(
                self.config, [*self.store.events(), *([charged] if charged else [])]
            ),
            event=charged,
            server_state=self.optimizer.state(),
            outcome=outcome,
            device_noise_std=plan.train.noise_std,
        )
        if new_head is not None:
            self.w, self.b = new_head
        record.metrics = self._metrics(outcomes, rows)
        self.store.commit_round(record, new_head)
        self.store.set_meta("device_ledger", {str(k): v for k, v in self.device_ledger.items()})
        self.round, self.head_version = plan.round, record.head_out
        self.on_event(
            "round_end",
            {"round": plan.round, "outcome": outcome, "epsilon": record.epsilon, **record.metrics},
        )
        return record

    def _event(self, plan: sampling.SamplingPlan, received: int) -> privacy.RoundEvent | None:
        return privacy.round_event(self.config, plan, received, self.n_params)

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
            scale=privacy.grid_scale(c, noise_std),
            bits=c.bits,
            flags=TRAIN_USE_SEED if c.train_seed else 0,
            seed=device_seed(c.train_seed, round_id) if c.train_seed else 0,
        )

    def _expected(self, params: Train) -> Expected:
        return Expected(
            params.round,
            self.head_version,
            self.n_params,
            params.clip,
            float(np.float32(params.scale)),
            params.bits,
            params.noise_std,
        )

    # ---- validation and aggregation -------------------------------------------------------------

    def _validate(
        self, outcomes: list[Outcome], expected: Expected
    ) -> tuple[list[UpdateRow], list[np.ndarray]]:
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
        self, deltas: list[np.ndarray], plan: sampling.SamplingPlan, shares: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`shares`: device noise shares in Σ deltas (with SecAgg one summed Δ holds many)."""
        stacked = np.stack(deltas)
        noise = privacy.release_noise(self.config, plan, shares, stacked.shape[1])
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


class Aggregator(RoundEngine):
    """The round engine over serial DeviceClients (see the module docstring).
    `on_event(kind, detail)` reports progress to a UI (the operator's console: it may show
    counts, never goes into a published artifact)."""

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
        super().__init__(store, config, initial_head, holdout, on_event, enrollment)
        self.devices = devices
        self.keys = KeyStore(store.conn)  # server key and enrolled device keys (provision.py)
        self.gone: set[int] = set()  # device ids whose port vanished
        self.clients = self._identify(devices)
        self.enroll_if_empty(list(self.clients))

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

    def run_round(self) -> RoundRow:
        """Plan, ask the selected devices over the link, finish; raises BudgetExceededError
        before any TRAIN when even a full round would exceed the budget."""
        plan = self.plan_round()
        self.on_event("round_start", {"round": plan.round, "selected": len(plan.selected)})
        if self.config.secagg:  # the aggregator sees only the sum (tools/aggregator/secure.py)
            return self.finish_round(plan, *secure.collect(self, plan))
        outcomes = self._collect(plan.round, plan.selected, plan.train.noise_std)
        return self.finish_round(plan, outcomes)

    # ---- collection ---------------------------------------------------------------------------

    def _collect(self, round_id: int, selected: list[int], noise_std: float) -> list[Outcome]:
        """Ask every selected device; one that is not connected is a dropout like a silent one.
        Transports other than the serial link override this (and `_identify`)."""
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
        """One device: refresh INFO, admit it, push the head if its hash differs, TRAIN, fetch."""
        device_id = client.device_id

        def admit(info: Info) -> str:
            self.store.record_device(device_id, client.transport.url, info.board_name,
                                     info.model_sha256)  # fmt: skip
            return self.admit_device(device_id, info)

        try:
            ensure_session(client, self.keys)  # devices enrolled by `invoke provision`
        except LinkError as exc:
            return Outcome(device_id, error=f"{type(exc).__name__}: {exc}")
        result = device_round(client, self.w, self.b, self.head_version, params, deadline, admit)
        if result.head_pushed:
            self.on_event("head_pushed", {"device": device_id})
        ledger = result.info is not None and result.info.has(Capability.LEDGER)
        if result.update is not None and ledger:
            self.note_device_ledger(device_id, result.update.ready)
        return Outcome(device_id, result.update, result.error, result.late)
