"""`invoke aggregate` / `python -m tools.aggregator`: open the ports, run rounds, report."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tools.aggregator.config import AggregatorConfig, PrivacyMode, PrivacyUnit, Strategy
from tools.aggregator.core import Aggregator
from tools.aggregator.evaluate import Holdout, holdout_from_task
from tools.aggregator.privacy import BudgetExceededError
from tools.aggregator.report import write_report
from tools.aggregator.store import Store, StoreVersionError
from tools.link.client import DeviceClient

ROOT = Path(__file__).resolve().parents[2]


def _initial_head(head_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    if not head_npz.exists():
        raise SystemExit(f"{head_npz} is missing: run `invoke train` first or pass --head-npz")
    data = np.load(head_npz)
    return data["w"].astype(np.float32), data["b"].astype(np.float32)


def _holdout(model_dir: Path | None) -> Holdout | None:
    if model_dir is None or not (model_dir / "devices.npz").exists():
        return None
    return holdout_from_task(model_dir)


def load_enrollment(path: Path) -> dict[int, str]:
    """device id → user id from a CSV file of `device_id,user_id` lines (header optional)."""
    mapping: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if not line.strip() or line.lstrip().startswith("#") or fields[0] == "device_id":
            continue
        if len(fields) != 2 or not fields[0].isdigit() or not fields[1]:
            raise SystemExit(f"{path}:{number}: expected `device_id,user_id`, got {line!r}")
        mapping[int(fields[0])] = fields[1]
    if not mapping:
        raise SystemExit(f"{path} enrolls no device; write `device_id,user_id` lines")
    return mapping


def _console_events(console: Console) -> Callable[[str, dict], None]:
    shown: set[str] = set()

    def show(kind: str, detail: dict) -> None:
        if kind == "sampling" and detail["note"] not in shown:  # once, not every round
            shown.add(detail["note"])
            console.print(
                f"[yellow]sampling: {detail['note']} (accounted with q = {detail['q']:g})"
            )
        elif kind == "enrolled":
            console.print(
                f"[yellow]no enrollment: registered the {detail['devices']} connected devices, "
                "each as its own user (device-level ε); pass --enrollment for user-level"
            )
        elif kind == "unreachable":
            console.print(f"[yellow]{detail['url']} did not answer HELLO: not connected")

    return show


def run_aggregate(
    ports: list[str],
    config: AggregatorConfig,
    store_path: Path,
    head_npz: Path,
    model_dir: Path | None,
    report_dir: Path,
    progress: bool = True,
    enrollment: dict[int, str] | None = None,
) -> Path:
    """Run `config.rounds` rounds (resuming the store), write the report; returns its path."""
    console = Console()
    try:
        store = Store(store_path)
    except StoreVersionError as exc:
        raise SystemExit(str(exc)) from exc
    clients = [DeviceClient.open(url, timeout=2.0, retries=5) for url in ports]
    try:
        aggregator = Aggregator(
            store,
            config,
            clients,
            initial_head=_initial_head(head_npz),
            holdout=_holdout(model_dir),
            on_event=_console_events(console),
            enrollment=enrollment,
        )
        if not aggregator.population().units:
            raise SystemExit(
                "no device answered and none is enrolled: check --port or pass --enrollment"
            )
        if aggregator.round:
            console.print(f"resuming after committed round {aggregator.round} of {store_path}")
        stopped = _drive(aggregator, config, console, progress)
        path = write_report(store, report_dir, {"stopped": stopped})
    finally:
        store.close()
        for client in clients:
            client.close()
    console.print(f"report: {path}")
    return path


def _drive(
    aggregator: Aggregator, config: AggregatorConfig, console: Console, progress: bool
) -> str:
    columns = (
        TextColumn("[bold]rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("rounds", total=config.rounds, completed=aggregator.round, status="")
        while aggregator.round < config.rounds:
            try:
                record = aggregator.run_round()
            except BudgetExceededError as exc:
                console.print(f"[yellow]stopped: {exc}")
                return str(exc)
            accuracy = record.metrics.get("holdout_accuracy")
            status = (
                f"{record.outcome}: accepted {record.metrics['accepted']}/{len(record.cohort)}  "
                f"ε={record.epsilon:.3g}"
                + (f"  acc={accuracy:.3f}" if accuracy is not None else "")
            )
            bar.update(task, completed=record.round, status=status)
            if not progress:
                console.print(f"round {record.round}: {status}")
    return ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.aggregator", description=__doc__)
    p.add_argument("--port", action="append", default=[], help="pyserial URL; repeat")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--privacy", choices=[m.value for m in PrivacyMode], default="none")
    p.add_argument("--noise-multiplier", type=float, default=1.0)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--epsilon-budget", type=float, default=float("inf"))
    p.add_argument(
        "--cohort", type=int, default=0, help="expected units per round, q = cohort/registered"
    )
    p.add_argument("--population", type=int, default=0, help="declared population (checked)")
    p.add_argument("--unit", choices=[u.value for u in PrivacyUnit], default="user")
    p.add_argument("--enrollment", type=Path, default=None, help="CSV device_id,user_id")
    p.add_argument("--min-updates", type=int, default=1)
    p.add_argument(
        "--bits",
        type=int,
        choices=[8, 16, 32],
        default=AggregatorConfig.bits,
        help="UPDATE value width; the grid follows docs/PRIVACY.md's rule (default 8)",
    )
    p.add_argument(
        "--secagg",
        action="store_true",
        help="secure aggregation (distributed mode; devices enrolled with `invoke provision`)",
    )
    p.add_argument(
        "--secagg-threshold",
        type=int,
        default=0,
        help="SecAgg threshold t, also what device noise is calibrated to: σ = z·C/√t "
        "(default ⌊m/2⌋ + 1 of the expected m devices; docs/PRIVACY.md, Distributed mode)",
    )
    p.add_argument("--strategy", choices=[s.value for s in Strategy], default="fedavg")
    p.add_argument("--server-lr", type=float, default=1.0)
    p.add_argument("--server-optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--deadline", type=float, default=30.0)
    p.add_argument("--task", default="watch")
    p.add_argument("--head-npz", type=Path, default=None)
    p.add_argument("--store", type=Path, default=ROOT / "build/aggregator/aggregate.sqlite")
    p.add_argument("--report-dir", type=Path, default=ROOT / "build/report")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--simulation",
        action="store_true",
        help="declare the run a simulation: replay-profile boards may take part (else refused)",
    )
    p.add_argument(
        "--engine",
        choices=["builtin", "flower"],
        default="builtin",
        help="builtin: boards on this machine (--port); flower: boards behind "
        "gateways (`invoke gateway`) of a Flower SuperLink (docs/DEPLOYMENT.md)",
    )
    p.add_argument(
        "--superlink",
        default="127.0.0.1:9091",
        help="flower: the SuperLink's HOST:PORT (started here unless --connect)",
    )
    p.add_argument(
        "--connect",
        action="store_true",
        help="flower: use a running SuperLink instead of starting one",
    )
    p.add_argument(
        "--boards", type=int, default=1, help="flower: wait for this many boards before round 1"
    )
    p.add_argument(
        "--node-key",
        type=Path,
        action="append",
        default=[],
        help="flower: a gateway's SuperNode public key; enables SuperNode "
        "authentication (only registered keys may join); repeat",
    )
    return p


def config_from_args(args: argparse.Namespace) -> AggregatorConfig:
    return AggregatorConfig(
        rounds=args.rounds,
        cohort_size=args.cohort,
        privacy=PrivacyMode(args.privacy),
        noise_multiplier=args.noise_multiplier,
        clip=args.clip,
        delta=args.delta,
        epsilon_budget=args.epsilon_budget,
        population=args.population,
        unit=PrivacyUnit(args.unit),
        min_updates=args.min_updates,
        bits=args.bits,
        secagg=args.secagg,
        secagg_threshold=args.secagg_threshold,
        strategy=Strategy(args.strategy),
        server_lr=args.server_lr,
        server_optimizer=args.server_optimizer,
        lr=args.lr,
        epochs=args.epochs,
        deadline_s=args.deadline,
        simulation=args.simulation,
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    model_dir = ROOT / "build/model" / args.task
    if args.engine == "flower":
        from tools.flower.engine import run_from_args

        run_from_args(args, config, model_dir)
        return
    if not args.port:
        raise SystemExit("give at least one --port (e.g. --port /dev/ttyUSB0)")
    run_aggregate(
        args.port,
        config,
        args.store,
        args.head_npz or model_dir / "head_init.npz",
        model_dir,
        args.report_dir,
        progress=not args.no_progress,
        enrollment=load_enrollment(args.enrollment) if args.enrollment else None,
    )
