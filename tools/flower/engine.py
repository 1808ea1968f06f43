"""`invoke aggregate --engine flower`: fedhead's rounds as a Flower run.

Starts a SuperLink (TLS with the deployment CA in build/flower/keys, made on first use) or
connects to a running one, writes the job file, submits the fedhead app with `flwr run` and
waits for the ServerApp to finish. The ServerApp writes the same store and report files as the
built-in engine (aggregate.json, aggregate_*.png).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from tools.aggregator.config import AggregatorConfig
from tools.flower.processes import (
    ROOT,
    FlowerError,
    FlowerProcess,
    Tls,
    register_supernode,
    run_app,
    start_superlink,
    write_connection,
)
from tools.flower.server_app import REPLY_SLACK_S, FlowerJob
from tools.flower.tls import ensure_keys

FLOWER_DIR = ROOT / "build/flower"
LOCAL_HOSTS = ["127.0.0.1", "localhost"]


@dataclass
class SuperLinkSpec:
    """Where the SuperLink is: started here (`start`) or already running at `address`."""

    address: str = "127.0.0.1:9091"
    start: bool = True
    tls: Tls | None = None  # None: the CA in build/flower/keys (made for LOCAL_HOSTS + host)
    node_auth: bool = False
    public_keys: tuple[Path, ...] = ()  # SuperNode keys to register when node_auth

    def resolved_tls(self, key_dir: Path) -> Tls:
        if self.tls is not None:
            return self.tls
        host = self.address.rsplit(":", 1)[0]
        keys = ensure_keys(key_dir, [*LOCAL_HOSTS, *([host] if host not in LOCAL_HOSTS else [])])
        return Tls(keys.ca_cert, keys.server_cert, keys.server_key)


def open_superlink(
    spec: SuperLinkSpec, home: Path, log_dir: Path, simulation: bool = False
) -> FlowerProcess | None:
    """Start the SuperLink of `spec` (returned, to be stopped) or point the CLI at it."""
    tls = spec.resolved_tls(FLOWER_DIR / "keys")
    host, port = spec.address.rsplit(":", 1)
    if not spec.start:
        write_connection(home, spec.address, tls)
        return None
    superlink = start_superlink(
        host, int(port), tls, home, log_dir, node_auth=spec.node_auth, simulation=simulation
    )
    try:
        for key in spec.public_keys:
            register_supernode(key, home)
    except BaseException:
        superlink.stop()
        raise
    return superlink


def run_flower_aggregate(
    config: AggregatorConfig,
    boards: int,
    store_path: Path,
    head_npz: Path,
    model_dir: Path | None,
    report_dir: Path,
    spec: SuperLinkSpec,
    work_dir: Path = FLOWER_DIR / "aggregate",
    join_timeout_s: float = 300.0,
    reply_slack_s: float = REPLY_SLACK_S,
    enrollment: dict[int, str] | None = None,
) -> Path:
    """Run `config.rounds` rounds on the boards behind the SuperLink's SuperNodes; returns the
    report path. Raises FlowerError (with the run's log) if the ServerApp wrote no report."""
    home, log_dir = work_dir / "home", work_dir / "logs"
    report = report_dir / "aggregate.json"
    report.unlink(missing_ok=True)
    job = FlowerJob(
        config=config.as_dict(),
        store=str(store_path.resolve()),
        head_npz=str(head_npz.resolve()),
        report_dir=str(report_dir.resolve()),
        model_dir=str(model_dir.resolve()) if model_dir else "",
        boards=boards,
        join_timeout_s=join_timeout_s,
        reply_slack_s=reply_slack_s,
        enrollment={str(k): v for k, v in (enrollment or {}).items()},
    )
    job_path = job.save(work_dir / f"job-{time.time_ns()}.json")
    store_path.parent.mkdir(parents=True, exist_ok=True)
    superlink = open_superlink(spec, home, log_dir)
    try:
        budget = join_timeout_s + config.rounds * (config.deadline_s + 90.0) + 120.0
        logs = run_app({"job": str(job_path)}, home, log_dir / "run.log", timeout=budget)
    finally:
        if superlink is not None:
            superlink.stop()
    if not report.exists():
        raise FlowerError(f"the ServerApp wrote no report; its log:\n{logs[-4000:]}")
    return report


def run_from_args(args: argparse.Namespace, config: AggregatorConfig, model_dir: Path) -> None:
    """`python -m tools.aggregator --engine flower ...` (see tools/aggregator/run.py)."""
    from tools.aggregator.run import load_enrollment

    spec = SuperLinkSpec(
        address=args.superlink,
        start=not args.connect,
        node_auth=bool(args.node_key),
        public_keys=tuple(args.node_key),
    )
    holdout_dir = model_dir if (model_dir / "embeddings.npz").exists() else None
    path = run_flower_aggregate(
        config,
        args.boards,
        args.store,
        args.head_npz or model_dir / "head_init.npz",
        holdout_dir,
        args.report_dir,
        spec,
        enrollment=load_enrollment(args.enrollment) if args.enrollment else None,
    )
    print(f"report: {path}")
