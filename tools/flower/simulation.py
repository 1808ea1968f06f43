"""`invoke simulate --engine flower`: the simulator's DP-FedAvg with one Flower virtual SuperNode
per client, run by Flower's simulation runtime (Ray).

Each virtual SuperNode owns one client's k-shot embeddings (its `partition-id`); its ClientApp
trains the head with the vectorized twin (tools/fedref/batch.train_many, proven equal to the
device C) on a ChaCha20 stream of (seed, round, partition) and returns Δ. The ServerApp picks
each round's cohort among the SuperNodes and runs the simulator's own server half
(tools/fleet/simulator.server_round: clip, sum, central noise, account, evaluate).

Client data travel by file: `invoke simulate` writes build/flower/simulate/clients.npz, which
every ClientApp process loads once (the simulation runs on this machine).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from tools.fleet.simulator import Clients, SimConfig

SIM_DIR = Path(__file__).resolve().parents[2] / "build/flower/simulate"
SIM_APP_DIR = Path(__file__).resolve().parent / "sim_app"


def save_clients(clients: Clients, path: Path) -> Path:
    """One npz: every client's rows concatenated, with offsets, plus the pooled test set."""
    offsets = np.cumsum([0, *(len(y) for y in clients.train_y)])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        emb=np.concatenate(clients.train_emb).astype(np.float32),
        y=np.concatenate(clients.train_y).astype(np.int64),
        offsets=offsets,
        test_emb=clients.test_emb,
        test_y=clients.test_y,
    )
    return path


@cache
def load_clients(path: str) -> Clients:
    with np.load(path) as npz:
        o = npz["offsets"]
        emb, y = npz["emb"], npz["y"]
        return Clients(
            [emb[o[i] : o[i + 1]] for i in range(len(o) - 1)],
            [y[o[i] : o[i + 1]] for i in range(len(o) - 1)],
            npz["test_emb"],
            npz["test_y"],
        )


def client_stream_seed(seed: int, round_id: int, client: int) -> int:
    """The same stream rule as tools/fleet/simulator.simulate_one."""
    return seed * 1_000_003 + round_id * 10_007 + client


# ---- ClientApp -------------------------------------------------------------------------------

client = ClientApp()


@client.train()
def train(message: Message, context: Context) -> Message:
    from tools.fedref.batch import train_many
    from tools.fedref.head import TrainParams
    from tools.fedref.rng import Rng

    job = message.content["job"]
    partition = int(context.node_config["partition-id"])
    data = load_clients(str(job["clients"]))
    rows, cols = int(job["rows"]), int(job["cols"])
    w = np.frombuffer(bytes(job["w"]), dtype=np.float32).reshape(rows, cols)
    b = np.frombuffer(bytes(job["b"]), dtype=np.float32)
    params = TrainParams(lr=float(job["lr"]), epochs=int(job["epochs"]), batch=int(job["batch"]))
    stream = Rng.from_u64(client_stream_seed(int(job["seed"]), int(job["round"]), partition))
    wl, bl, _, _ = train_many(
        w, b, [data.train_emb[partition]], [data.train_y[partition]], params, [stream]
    )
    delta = np.concatenate([(wl[0] - w).ravel(), bl[0] - b]).astype(np.float32)
    reply = ConfigRecord({"partition": partition, "delta": delta.tobytes()})
    return Message(RecordDict({"update": reply}), reply_to=message)


# ---- ServerApp -------------------------------------------------------------------------------

server = ServerApp()


def _wait_nodes(grid: Grid, count: int, timeout: float = 300.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        ids = sorted(grid.get_node_ids())
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def _round(grid: Grid, ids: list[int], content: ConfigRecord, timeout: float) -> np.ndarray:
    messages = [
        Message(RecordDict({"job": content}), dst_node_id=n, message_type="train") for n in ids
    ]
    replies = [r for r in grid.send_and_receive(messages, timeout=timeout) if r.has_content()]
    replies.sort(key=lambda r: int(r.content["update"]["partition"]))
    return np.stack(
        [np.frombuffer(bytes(r.content["update"]["delta"]), np.float32) for r in replies]
    )


def simulate_z(grid: Grid, ids: list[int], job: dict[str, Any], z: float) -> dict[str, Any]:
    """One curve: R rounds with noise multiplier z, the cohort drawn among the SuperNodes."""
    from tools.aggregator.config import AggregatorConfig, PrivacyMode
    from tools.fleet.simulator import server_round

    config = SimConfig(
        **{**job["config"], "noise_multipliers": tuple(job["config"]["noise_multipliers"])}
    )
    clients = load_clients(job["clients"])
    head = np.load(job["head_npz"])
    w, b = head["w"].astype(np.float32), head["b"].astype(np.float32)
    mode = PrivacyMode.CENTRAL if z > 0 else PrivacyMode.NONE
    agg = AggregatorConfig(
        privacy=mode, noise_multiplier=z or 1.0, clip=config.clip, delta=config.delta
    )
    rng = np.random.default_rng([config.seed, int(z * 1000)])
    accuracy, epsilon, events, seconds, received = [], [], [], [], []
    for round_id in range(1, config.rounds + 1):
        started = time.perf_counter()
        chosen = rng.choice(len(ids), size=min(config.cohort, len(ids)), replace=False)
        content = ConfigRecord(
            {
                "clients": job["clients"],
                "round": round_id,
                "seed": config.seed,
                "rows": int(w.shape[0]),
                "cols": int(w.shape[1]),
                "w": w.tobytes(),
                "b": b.tobytes(),
                "lr": config.lr,
                "epochs": config.epochs,
                "batch": config.batch,
            }
        )
        deltas = _round(grid, [ids[i] for i in chosen], content, timeout=job["round_timeout_s"])
        w, b, eps, acc = server_round(agg, w, b, deltas, len(ids), events, clients)
        accuracy.append(acc)
        epsilon.append(eps)
        received.append(len(deltas))
        seconds.append(round(time.perf_counter() - started, 2))
        print(
            f"z={z} round {round_id}: {len(deltas)} updates, acc {acc:.3f}, {seconds[-1]} s",
            flush=True,
        )
    return {
        "noise_multiplier": z,
        "accuracy_by_round": accuracy,
        "epsilon_by_round": epsilon,
        "updates_by_round": received,
        "seconds_by_round": seconds,
    }


@server.main()
def server_main(grid: Grid, context: Context) -> None:
    from tools.fleet.simulator import write_report

    job = json.loads(Path(str(context.run_config["job"])).read_text())
    started = time.perf_counter()
    ids = _wait_nodes(grid, job["config"]["clients"])
    clients = load_clients(job["clients"])
    head = np.load(job["head_npz"])
    initial = float(
        np.mean(np.argmax(clients.test_emb @ head["w"] + head["b"], axis=1) == clients.test_y)
    )
    curves = [simulate_z(grid, ids, job, float(z)) for z in job["config"]["noise_multipliers"]]
    report = {
        "engine": "flower",
        "config": {**job["config"], "clients": len(ids)},
        "virtual_supernodes": len(ids),
        "initial_acc": initial,
        "curves": curves,
        "test_windows": len(clients.test_y),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    write_report(report, Path(job["report_dir"]))
    print(f"report: {job['report_dir']}/simulate.json", flush=True)


# ---- driver (invoke simulate --engine flower) --------------------------------------------------


def run_flower_simulation(config: SimConfig, report_dir: Path, num_cpus: int = 2) -> Path:
    """Write the clients, start a simulation SuperLink, `flwr run` the simulation app."""
    from model_gen import paths
    from model_gen.freshness import ensure_trained
    from tools.fleet.simulator import load_clients as load_sim_clients
    from tools.flower.engine import SuperLinkSpec, open_superlink
    from tools.flower.gateway import free_port
    from tools.flower.processes import CONNECTION, FlowerError, flwr

    ensure_trained(config.task)
    clients = load_sim_clients(config)
    config = replace(config, clients=len(clients.train_y))
    data = save_clients(clients, SIM_DIR / "clients.npz")
    job = {
        "config": asdict(config),
        "clients": str(data),
        "head_npz": str(paths.model_dir(config.task) / paths.HEAD_NAME),
        "report_dir": str(report_dir.resolve()),
        "round_timeout_s": 600.0,
    }
    job_path = SIM_DIR / "job.json"
    job_path.write_text(json.dumps(job, indent=2))
    report = report_dir / "simulate.json"
    report.unlink(missing_ok=True)
    home, logs = SIM_DIR / "home", SIM_DIR / "logs"
    spec = SuperLinkSpec(address=f"127.0.0.1:{free_port()}")
    superlink = open_superlink(spec, home, logs, simulation=True)
    try:
        federation = (
            f"num-supernodes={config.clients} client-resources-num-cpus=1 "
            f"init-args-num-cpus={num_cpus}"
        )
        result = flwr(
            [
                "run",
                str(SIM_APP_DIR),
                CONNECTION,
                "--run-config",
                f'job="{job_path}"',
                "--federation-config",
                federation,
                "--stream",
            ],
            home,
            timeout=24 * 3600,
        )
        (logs / "run.log").write_text(result.stdout + result.stderr)
    finally:
        assert superlink is not None
        superlink.stop()
    if not report.exists():
        raise FlowerError(f"the simulation wrote no report; see {logs / 'run.log'}")
    return report
