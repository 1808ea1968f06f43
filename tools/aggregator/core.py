"""Aggregator: drives rounds over DeviceClients and commits each round to the store.

    store = Store("build/aggregator/run.sqlite")
    agg = Aggregator(store, AggregatorConfig(rounds=10, privacy=PrivacyMode.CENTRAL),
                     devices=[DeviceClient.open(url) for url in urls],
                     initial_head=(w0, b0), holdout=Holdout(emb, labels))
    record = agg.run_round()        # one round, committed; or agg.run() for config.rounds

A round: check the ε budget, pick the cohort, push the global head where a device's head_sha256
differs, TRAIN, collect updates until the deadline (one thread per device), validate each,
aggregate the accepted ones, add central noise, step the server optimizer, evaluate on the
holdout, account, commit everything in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tools.aggregator import privacy
from tools.aggregator.config import AggregatorConfig
from tools.aggregator.evaluate import Holdout, evaluate
from tools.aggregator.store import RoundRow, Store, UpdateRow
from tools.aggregator.strategy import ServerOptimizer, combine
from tools.aggregator.validation import Expected, validate
from tools.link.client import DeviceClient, FetchedUpdate, head_sha256
from tools.link.errors import LinkError, PortGoneError
from tools.link.messages import Train


@dataclass
class Outcome:
    """What one device's worker brought back."""

    client: DeviceClient
    update: FetchedUpdate | None = None
    error: str = ""
    late: bool = False


class Aggregator:
    """See the module docstring. `on_event(kind, detail)` reports progress to a UI."""

    def __init__(
        self,
        store: Store,
        config: AggregatorConfig,
        devices: list[DeviceClient],
        initial_head: tuple[np.ndarray, np.ndarray] | None = None,
        holdout: Holdout | None = None,
        on_event: Callable[[str, dict], None] | None = None,
    ) -> None:
        config.check()
        self.store, self.config, self.devices = store, config, devices
        self.holdout = holdout
        self.on_event = on_event or (lambda kind, detail: None)
        self.gone: set[int] = set()  # indexes of devices whose port vanished
        self._resume_or_start(initial_head)

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
        self.optimizer = ServerOptimizer(
            self.config, self.w.size + self.b.size, self.store.server_state()
        )

    @property
    def epsilon(self) -> float:
        return privacy.epsilon(self.store.events(), self.config.delta)

    def run(self, rounds: int | None = None) -> list[RoundRow]:
        """Run until `rounds` (default config.rounds) are committed in total."""
        target = rounds if rounds is not None else self.config.rounds
        records = []
        while self.round < target:
            records.append(self.run_round())
        return records

    def run_round(self) -> RoundRow:
        """Run and commit the next round; raises BudgetExceededError before spending ε."""
        round_id, started = self.round + 1, time.time()
        cohort = self._cohort(round_id)
        population = self.config.population or len(self.devices)
        n_params = self.w.size + self.b.size
        planned = privacy.round_event(
            self.config, population, len(cohort), len(cohort), n_params
        )
        privacy.check_budget(self.config, self.store.events(), planned)
        self.on_event("round_start", {"round": round_id, "cohort": len(cohort)})
        outcomes = self._collect(round_id, cohort)
        rows, deltas, weights = self._validate(round_id, outcomes)
        event = privacy.round_event(self.config, population, len(cohort), len(deltas), n_params)
        new_head = self._aggregate(deltas, weights)
        record = RoundRow(
            round=round_id,
            head_in=self.head_version,
            head_out=self.head_version + (new_head is not None),
            started=started,
            cohort=[c.device_id for c in (self.devices[i] for i in cohort)],
            updates=rows,
            dropped=sum(1 for o in outcomes if o.update is None),
            epsilon=0.0,
            event=event,
            server_state=self.optimizer.state(),
        )
        record.epsilon = privacy.epsilon(
            [*self.store.events(), *([event] if event else [])], self.config.delta
        )
        if new_head is not None:
            self.w, self.b = new_head
        record.metrics = self._metrics(outcomes, rows)
        self.store.commit_round(record, new_head)
        self.round, self.head_version = round_id, record.head_out
        self.on_event("round_end", {"round": round_id, "epsilon": record.epsilon, **record.metrics})
        return record

    def _cohort(self, round_id: int) -> list[int]:
        alive = [i for i in range(len(self.devices)) if i not in self.gone]
        size = self.config.cohort_size or len(alive)
        rng = np.random.default_rng([self.config.seed, round_id])
        chosen = rng.choice(len(alive), size=min(size, len(alive)), replace=False)
        return sorted(alive[i] for i in chosen)

    # ---- collection ---------------------------------------------------------------------------

    def _train_params(self, round_id: int, cohort_size: int) -> Train:
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
            noise_std=privacy.device_noise_std(c, cohort_size),
            scale=c.quant_scale_for(privacy.device_noise_std(c, cohort_size)),
            bits=c.bits,
        )

    def _collect(self, round_id: int, cohort: list[int]) -> list[Outcome]:
        params = self._train_params(round_id, len(cohort))
        deadline = time.monotonic() + self.config.deadline_s
        with ThreadPoolExecutor(max_workers=max(1, len(cohort))) as pool:
            futures = [pool.submit(self._work, self.devices[i], params, deadline) for i in cohort]
            outcomes = [f.result() for f in futures]
        for index, outcome in zip(cohort, outcomes, strict=True):
            if outcome.error.startswith("port_gone"):
                self.gone.add(index)
        return outcomes

    def _work(self, client: DeviceClient, params: Train, deadline: float) -> Outcome:
        """One device: refresh INFO, push the head if its hash differs, TRAIN, fetch."""
        try:
            info = client.hello()
            self.store.record_device(
                client.device_id, client.transport.url, info.board_name, info.model_sha256
            )
            if info.head_sha256 != head_sha256(self.w, self.b):
                client.install_head(self.w, self.b, self.head_version)
                self.on_event("head_pushed", {"device": client.device_id})
            client.train(params)
            update = client.fetch_update(
                params.round, timeout=max(0.0, deadline - time.monotonic())
            )
        except PortGoneError as exc:
            return Outcome(client, error=f"port_gone: {exc}")
        except LinkError as exc:
            return Outcome(client, error=f"{type(exc).__name__}: {exc}")
        return Outcome(client, update, late=time.monotonic() > deadline)

    # ---- validation and aggregation -------------------------------------------------------------

    def _expected(self, round_id: int, cohort_size: int) -> Expected:
        params = self._train_params(round_id, cohort_size)
        return Expected(
            round_id,
            self.head_version,
            self.w.size + self.b.size,
            params.clip,
            float(np.float32(params.scale)),
            params.bits,
            params.noise_std,
        )

    def _validate(
        self,
        round_id: int,
        outcomes: list[Outcome],
    ) -> tuple[list[UpdateRow], list[np.ndarray], list[float]]:
        expected = self._expected(round_id, len(outcomes))
        accepted_devices: set[int] = set()
        rows, deltas, weights = [], [], []
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
                weights.append(float(row.examples))
        return rows, deltas, weights

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
            ready.examples,
            verdict.norm,
            ready.bits,
            ready.scale,
            ready.flags,
            ready.train_loss,
            ready.train_acc,
            ready.crc32,
            update.data if accepted else None,
        )
        return row, verdict.delta if accepted else None

    def _aggregate(
        self,
        deltas: list[np.ndarray],
        weights: list[float],
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if len(deltas) < max(1, self.config.min_updates):
            return None
        stacked = np.stack(deltas)
        noise = privacy.central_noise(self.config, stacked.shape[1])
        mean = combine(stacked, np.asarray(weights), self.config, noise)
        params = np.concatenate([self.w.ravel(), self.b]).astype(np.float64)
        new = self.optimizer.step(params, mean).astype(np.float32)
        d, c = self.w.shape
        return new[: d * c].reshape(d, c), new[d * c :]

    def _metrics(self, outcomes: list[Outcome], rows: list[UpdateRow]) -> dict:
        accepted = [r for r in rows if r.accepted]
        metrics: dict = {
            "accepted": len(accepted),
            "rejected": {r.device_id: r.reason for r in rows if not r.accepted},
            "dropped": {o.client.device_id: o.error for o in outcomes if o.update is None},
            "train_loss": float(np.mean([r.train_loss for r in accepted])) if accepted else None,
            "examples": int(sum(r.examples for r in accepted)),
        }
        if self.holdout is not None:
            metrics.update(
                {f"holdout_{k}": v for k, v in evaluate(self.w, self.b, self.holdout).items()}
            )
        return metrics
