"""`invoke demo`: the whole loop on virtual boards, end to end, through the real serial link.

Phases (each timed, reported in demo.json `phases_s`):
  prepare      train + emit when the model's inputs changed, build the firmware (PlatformIO)
  boot         start the fleet (host processes on ptys, or QEMU on socket://), HELLO each
  provision    replay every device's k labelled windows as SAMPLE frames (sensor replay)
  baseline     every device scores its test windows with the pre-trained global head, and
               returns the embeddings it computed (for host-side per-round evaluation)
  federated    DP federated rounds over the federated devices with the real aggregator
  personalize  final global head to every device; on-device TRAIN from its k windows;
               held-out devices also at k = 2 and 5; scores with personal and global heads
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tools.demo import device_eval
from tools.demo.data import DeviceData, FleetData, accuracy, load_fleet_data
from tools.demo.report import write_report
from tools.link.client import head_sha256

ROOT = Path(__file__).resolve().parents[2]
REPORT_DIR = ROOT / "build" / "report"
console = Console()


@dataclass(frozen=True)
class DemoConfig:
    task: str = "watch"
    board: str = "host"
    devices: int = 0  # 0: every federated and held-out device of the task
    rounds: int = 5
    privacy: str = "distributed"
    secagg: bool = True  # distributed mode with secure aggregation: the server sees only sums
    noise_multiplier: float = 1.0
    clip: float = 0.5
    bits: int = 8  # UPDATE value width (the aggregator's default)
    delta: float = 1e-5
    k: int = 10
    extra_k: tuple[int, ...] = (2, 5)
    fed_lr: float = 0.1
    fed_epochs: int = 2
    personal: device_eval.LocalTraining = field(default_factory=device_eval.LocalTraining)
    seed: int = 0


class Phases:
    """Wall time of each phase, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        console.rule(f"[bold]{name}")
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 2)
        console.log(f"{name}: {self.seconds[name]:.1f} s")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def choose_devices(data: FleetData, wanted: int) -> list[DeviceData]:
    """All devices, or `wanted` of them keeping both splits represented."""
    fed, held = data.of_split("federated"), data.of_split("heldout")
    if wanted <= 0 or wanted >= len(fed) + len(held):
        return fed + held
    if wanted < 2:
        raise ValueError("the demo needs at least 2 devices (one federated, one held out)")
    n_held = max(1, round(wanted * len(held) / (len(fed) + len(held))))
    return fed[: wanted - n_held] + held[:n_held]


@contextmanager
def start_fleet(board: str, n: int, firmware: Path) -> Iterator[list[Any]]:
    from tools.fleet.launch import host_fleet, qemu_fleet

    fleet = host_fleet(firmware, n) if board == "host" else qemu_fleet(firmware, n)
    with fleet as devices:
        yield devices


def _for_each(devices: list[DeviceData], label: str,
              work: Callable[[DeviceData], Any]) -> list[Any]:
    results = []
    with _progress() as progress:
        bar = progress.add_task(label, total=len(devices))
        for device in devices:
            results.append(work(device))
            progress.advance(bar)
    return results


def run_demo(config: DemoConfig, report_dir: Path = REPORT_DIR) -> dict[str, Any]:
    from model_gen import paths
    from model_gen.freshness import ensure_trained
    from tools import boards
    from tools.fleet.entropy import provision_entropy
    from tools.link.client import DeviceClient

    phases, started = Phases(), time.perf_counter()
    with phases("prepare"):
        ensure_trained(config.task)
        firmware = boards.build(config.board, profile="replay")
        data = load_fleet_data(paths.model_dir(config.task) / paths.DEVICES_NAME, config.task)
        head = np.load(paths.model_dir(config.task) / paths.HEAD_NAME)
        w0, b0 = head["w"].astype(np.float32), head["b"].astype(np.float32)
        chosen = choose_devices(data, config.devices)
    with ExitStack() as stack:
        with phases("boot"):
            fleet = stack.enter_context(start_fleet(config.board, len(chosen), firmware))
            clients = {d.index: stack.enter_context(DeviceClient.open(v.url, timeout=5.0))
                       for d, v in zip(chosen, fleet, strict=True)}
            for client in clients.values():
                client.hello()
                provision_entropy(client)  # QEMU boards only (test-only, docs/PRIVACY.md)
        results = _run_phases(config, phases, chosen, clients, w0, b0, stack)
    results["wall_s"] = round(time.perf_counter() - started, 2)
    results["phases_s"] = phases.seconds
    path = write_report(results, report_dir)
    console.print(f"wrote {path}, demo.md and plots in {report_dir}")
    return results


def _run_phases(config: DemoConfig, phases: Phases, chosen: list[DeviceData],
                clients: dict[int, Any], w0: np.ndarray, b0: np.ndarray,
                stack: ExitStack) -> dict[str, Any]:
    fed = [d for d in chosen if d.split == "federated"]
    held = [d for d in chosen if d.split == "heldout"]
    shots = {d.index: d.shots(config.k, config.seed) for d in chosen}
    with phases("provision"):
        _for_each(chosen, "SAMPLE k labelled windows",
                  lambda d: device_eval.provision(clients[d.index], *shots[d.index]))
    with phases("baseline"):
        test_emb = dict(zip([d.index for d in chosen], _for_each(
            chosen, "test windows → embeddings",
            lambda d: device_eval.embeddings(clients[d.index], d.test_x)), strict=True))
        shot_emb = {d.index: device_eval.embeddings(clients[d.index], shots[d.index][0])
                    for d in chosen}
    pretrain = {d.index: _host_accuracy(w0, b0, test_emb[d.index], d.test_y) for d in chosen}
    with phases("federated"):
        aggregator, by_round = _federate(config, fed, clients, w0, b0, test_emb, stack)
    w, b = aggregator.w.astype(np.float32), aggregator.b.astype(np.float32)
    with phases("personalize"):
        per_device = _personalize_all(config, chosen, clients, (w, b, aggregator.head_version),
                                      shots, shot_emb, test_emb, pretrain)
        by_k = _held_out_sweep(config, held, clients, per_device, shot_emb, test_emb)
    return _summary(config, chosen, fed, held, per_device, by_k, by_round, pretrain,
                    aggregator, clients)


def _host_accuracy(w: np.ndarray, b: np.ndarray, emb: np.ndarray, y: np.ndarray) -> float:
    return accuracy(np.argmax(emb @ w + b, axis=1), y)


def _federate(config: DemoConfig, fed: list[DeviceData], clients: dict[int, Any],
              w0: np.ndarray, b0: np.ndarray, test_emb: dict[int, np.ndarray],
              stack: ExitStack) -> tuple[Any, list[float]]:
    from tools.aggregator.config import AggregatorConfig, PrivacyMode
    from tools.aggregator.core import Aggregator
    from tools.aggregator.store import Store

    agg_config = AggregatorConfig(
        rounds=config.rounds, privacy=PrivacyMode(config.privacy),
        noise_multiplier=config.noise_multiplier, clip=config.clip, delta=config.delta,
        bits=config.bits,
        lr=config.fed_lr, epochs=config.fed_epochs, batch=config.personal.batch,
        secagg=config.secagg and config.privacy == "distributed",
        simulation=True)  # replay boards: a declared simulation
    store_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-store-")))
    store = Store(store_dir / "aggregator.sqlite")
    stack.callback(store.close)
    # The registered population: every federated wrist, enrolled under its user (two each).
    enrollment = {clients[d.index].device_id: d.user for d in fed}
    if agg_config.secagg:  # enroll every federated board with this aggregator's key (TOFU)
        from tools.aggregator.provision import provision_client

        for d in fed:
            provision_client(clients[d.index], store)
    aggregator = Aggregator(store, agg_config, [clients[d.index] for d in fed],
                            initial_head=(w0, b0), enrollment=enrollment)
    fed_emb = np.concatenate([test_emb[d.index] for d in fed])
    fed_y = np.concatenate([d.test_y for d in fed])
    by_round: list[float] = []
    with _progress() as progress:
        bar = progress.add_task("federated rounds", total=config.rounds)
        for _ in range(config.rounds):
            row = aggregator.run_round()
            by_round.append(_host_accuracy(aggregator.w, aggregator.b, fed_emb, fed_y))
            progress.advance(bar)
            console.log(f"round {row.round}: {row.outcome}, {len(row.updates)} updates, "
                        f"global acc {by_round[-1]:.3f}, ε {row.epsilon:.2f}")
    return aggregator, by_round


def _personalize_all(config: DemoConfig, chosen: list[DeviceData], clients: dict[int, Any],
                     head: tuple[np.ndarray, np.ndarray, int],
                     shots: dict[int, tuple[np.ndarray, np.ndarray]],
                     shot_emb: dict[int, np.ndarray], test_emb: dict[int, np.ndarray],
                     pretrain: dict[int, float]) -> dict[int, dict[str, Any]]:
    w, b, version = head

    def one(d: DeviceData) -> dict[str, Any]:
        client = clients[d.index]
        if client.hello().head_sha256 != head_sha256(w, b):
            client.install_head(w, b, version)
        device_eval.personalize(client, config.personal, timeout_s=120)
        return {
            "name": d.name, "user": d.user, "split": d.split, "device_id": client.device_id,
            "own_windows": len(shots[d.index][1]), "test_windows": len(d.test_y),
            "pretrain_acc": pretrain[d.index],
            "global_acc": device_eval.device_accuracy(client, d, use_global=True),
            "personal_acc": device_eval.device_accuracy(client, d, use_global=False),
            "local_only_acc": device_eval.local_only_accuracy(
                shot_emb[d.index], shots[d.index][1], test_emb[d.index], d.test_y,
                config.personal, config.seed),
        }

    return dict(zip([d.index for d in chosen],
                    _for_each(chosen, "personalize on device", one), strict=True))


def _held_out_sweep(config: DemoConfig, held: list[DeviceData], clients: dict[int, Any],
                    per_device: dict[int, dict[str, Any]], shot_emb: dict[int, np.ndarray],
                    test_emb: dict[int, np.ndarray]) -> dict[str, dict[str, float]]:
    """Held-out devices at smaller k, personalized on the device again from the global head."""
    by_k: dict[str, dict[str, float]] = {}
    for k in sorted({*config.extra_k, config.k}):
        rows = []
        for d in held:
            if k == config.k:
                rows.append(per_device[d.index])
                continue
            client = clients[d.index]
            x, y = d.shots(k, config.seed)
            device_eval.provision(client, x, y)
            device_eval.personalize(client, config.personal, timeout_s=120)
            emb = device_eval.embeddings(client, x)
            rows.append({
                "global_acc": per_device[d.index]["global_acc"],
                "personal_acc": device_eval.device_accuracy(client, d, use_global=False),
                "local_only_acc": device_eval.local_only_accuracy(
                    emb, y, test_emb[d.index], d.test_y, config.personal, config.seed),
            })
        by_k[str(k)] = _mean_accuracies(rows)
    return by_k


def _mean_accuracies(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("global_acc", "personal_acc", "local_only_acc")
    means = {key: float(np.mean([r[key] for r in rows])) for key in keys}
    means["lift"] = means["personal_acc"] - means["global_acc"]
    return means


def _summary(config: DemoConfig, chosen: list[DeviceData], fed: list[DeviceData],
             held: list[DeviceData], per_device: dict[int, dict[str, Any]],
             by_k: dict[str, dict[str, float]], by_round: list[float],
             pretrain: dict[int, float], aggregator: Any,
             clients: dict[int, Any]) -> dict[str, Any]:
    fed_rows = [per_device[d.index] for d in fed]
    fed_test = sum(len(d.test_y) for d in fed)
    held_k = by_k[str(config.k)]
    from tools.aggregator.report import privacy_summary

    epsilon_by_round = [r["epsilon"] for r in aggregator.store.rounds()]
    summary = privacy_summary(aggregator.store)
    up = [c.transport.bytes_read for c in clients.values()]
    down = [c.transport.bytes_written for c in clients.values()]
    profiles = sorted({c.info.profile_name for c in clients.values() if c.info is not None})
    return {
        "task": config.task, "board": config.board, "devices": len(chosen),
        # what every board ran: replay boards, so the run is declared a simulation
        "profile": ", ".join(profiles), "simulation": True,
        "rounds": config.rounds, "k": config.k,
        "config": {k: v for k, v in asdict(config).items() if k != "personal"}
        | {"personal": asdict(config.personal)},
        "privacy": summary | {
            "epsilon": summary["epsilon_against_head_consumers"],
            "epsilon_by_round": epsilon_by_round,
        },
        "held_out": {**held_k, "by_k": by_k, "devices": len(held)},
        "federated": {
            "devices": len(fed),
            # test-window weighted, like global_acc_by_round
            "pretrain_acc": sum(pretrain[d.index] * len(d.test_y) for d in fed) / fed_test,
            "global_acc_by_round": by_round,
            "personal_acc": sum(r["personal_acc"] * r["test_windows"] for r in fed_rows)
            / fed_test,
        },
        "per_device": [per_device[d.index] for d in chosen],
        "bytes": {"up_per_device": float(np.mean(up)), "down_per_device": float(np.mean(down))},
    }
