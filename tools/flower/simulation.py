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


def _config(job: dict[str, Any]) -> SimConfig:
    c = job["config"]
    return SimConfig(
        **{**c, "noise_multipliers": tuple(c["noise_multipliers"]), "modes": tuple(c["modes"])}
    )


# ---- ClientApp -------------------------------------------------------------------------------

client = ClientApp()


@client.query()
def partition(message: Message, context: Context) -> Message:
    """Which client's data this virtual SuperNode owns."""
    owned = ConfigRecord({"partition": int(context.node_config["partition-id"])})
    return Message(RecordDict({"client": owned}), reply_to=message)


@client.train()
def train(message: Message, context: Context) -> Message:
    """Train this client's head with the vectorized twin, privatize it as the device would
    (clip, stochastic rounding, discrete Gaussian noise of σ), send the integers."""
    import secrets

    from tools.fedref.batch import train_many
    from tools.fedref.head import TrainParams
    from tools.fedref.privacy import PrivacyParams, privatize_many
    from tools.fedref.rng import Rng
    from tools.fleet.simulator import client_stream_seed

    job = message.content["job"]
    config = SimConfig(seed=int(job["seed"]))
    own = int(context.node_config["partition-id"])
    data = load_clients(str(job["clients"]))
    rows, cols = int(job["rows"]), int(job["cols"])
    w = np.frombuffer(bytes(job["w"]), dtype=np.float32).reshape(rows, cols)
    b = np.frombuffer(bytes(job["b"]), dtype=np.float32)
    params = TrainParams(lr=float(job["lr"]), epochs=int(job["epochs"]), batch=int(job["batch"]))
    stream = Rng.from_u64(client_stream_seed(config, int(job["round"]), own))
    wl, bl, _, _ = train_many(w, b, [data.train_emb[own]], [data.train_y[own]], params, [stream])
    delta = np.concatenate([(wl[0] - w).ravel(), bl[0] - b])[None, :]
    device = PrivacyParams(
        float(job["clip"]), float(job["sigma"]), float(job["scale"]), int(job["bits"])
    )
    q = privatize_many(delta, device, np.random.default_rng(secrets.randbits(128)))[0]
    reply = ConfigRecord({"partition": own, "q": q.astype("<i8").tobytes()})
    return Message(RecordDict({"update": reply}), reply_to=message)


# ---- ServerApp -------------------------------------------------------------------------------

server = ServerApp()


def _partitions(grid: Grid, count: int, timeout: float = 600.0) -> dict[int, int]:
    """partition (client index) → node id, asked once of every virtual SuperNode."""
    deadline = time.monotonic() + timeout
    ids = sorted(grid.get_node_ids())
    while len(ids) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        ids = sorted(grid.get_node_ids())
    messages = [
        Message(RecordDict({"q": ConfigRecord({})}), dst_node_id=n, message_type="query")
        for n in ids
    ]
    owners = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_content():
            owners[int(reply.content["client"]["partition"])] = reply.metadata.src_node_id
    return owners


def _round(grid: Grid, nodes: list[int], content: ConfigRecord, timeout: float) -> np.ndarray:
    messages = [
        Message(RecordDict({"job": content}), dst_node_id=n, message_type="train") for n in nodes
    ]
    replies = [r for r in grid.send_and_receive(messages, timeout=timeout) if r.has_content()]
    replies.sort(key=lambda r: int(r.content["update"]["partition"]))
    return np.stack([np.frombuffer(bytes(r.content["update"]["q"]), "<i8") for r in replies])


def simulate_curve(
    grid: Grid, owners: dict[int, int], job: dict[str, Any], z: float, mode: str
) -> dict[str, Any]:
    """tools/fleet/simulator.simulate_one with each client's half done by its SuperNode."""
    import secrets

    from tools.aggregator import privacy, sampling
    from tools.fedref.privacy import dequantize
    from tools.fleet.simulator import accuracy_of, server_step, sim_setup

    config = _config(job)
    clients = load_clients(job["clients"])
    setup = sim_setup(config, z, mode, len(clients.train_y))
    head = np.load(job["head_npz"])
    w, b = head["w"].astype(np.float32), head["b"].astype(np.float32)
    dropout_rng = np.random.default_rng(secrets.randbits(128))
    accuracy, epsilon, received, events, seconds = [], [], [], [], []
    for round_id in range(1, config.rounds + 1):
        started = time.perf_counter()
        chosen = [
            c
            for c in sampling.poisson_sample(setup.population, setup.plan.q, setup.plan.cap)
            if dropout_rng.random() >= config.dropout and c in owners
        ]
        content = ConfigRecord(
            {
                "clients": job["clients"], "round": round_id, "seed": config.seed,
                "rows": int(w.shape[0]), "cols": int(w.shape[1]),
                "w": w.tobytes(), "b": b.tobytes(),
                "lr": config.lr, "epochs": config.epochs, "batch": config.batch,
                "clip": setup.device.clip, "sigma": setup.device.noise_std,
                "scale": setup.device.scale, "bits": setup.device.bits,
            }
        )  # fmt: skip
        if chosen:
            q = _round(grid, [owners[c] for c in chosen], content, job["round_timeout_s"])
            w, b, event = server_step(setup, w, b, dequantize(q, setup.scale), dropout_rng)
            events += [event] if event is not None else []
            received.append(len(q))
        else:
            received.append(0)
        epsilon.append(privacy.ledger_epsilon(setup.agg, events) if z > 0 else None)
        accuracy.append(accuracy_of(clients, w, b))
        seconds.append(round(time.perf_counter() - started, 2))
        print(f"{mode} z={z} round {round_id}: {received[-1]} updates, "
              f"acc {accuracy[-1]:.3f}, {seconds[-1]} s", flush=True)  # fmt: skip
    return {
        "mode": str(setup.agg.privacy),
        "noise_multiplier": z,
        "sampling_q": setup.plan.q,
        "accuracy_by_round": accuracy,
        "epsilon_by_round": epsilon,
        "received_by_round": received,
        "seconds_by_round": seconds,
    }


@server.main()
def server_main(grid: Grid, context: Context) -> None:
    from tools.fleet.simulator import accuracy_of, write_report

    job = json.loads(Path(str(context.run_config["job"])).read_text())
    config = _config(job)
    started = time.perf_counter()
    owners = _partitions(grid, config.clients)
    discovered = time.perf_counter() - started
    clients = load_clients(job["clients"])
    head = np.load(job["head_npz"])
    runs = [
        (mode, z)
        for z in config.noise_multipliers
        for mode in (config.modes if z > 0 else ("none",))
    ]
    curves = [simulate_curve(grid, owners, job, z, mode) for mode, z in runs]
    report = {
        "engine": "flower",
        "config": job["config"],
        "virtual_supernodes": len(owners),
        "discovery_s": round(discovered, 2),
        "initial_acc": accuracy_of(clients, head["w"], head["b"]),
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
