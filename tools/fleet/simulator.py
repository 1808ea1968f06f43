"""`invoke simulate`: the federated loop for thousands of clients with the Python twins.

Same mechanism as the devices and the aggregator, vectorized: the aggregator's Poisson
sampling (CSPRNG, q = cohort / clients, at most K devices in distributed mode) picks each
round's clients, a selected client drops out with probability `dropout`, every answering
client trains its head with
tools/fedref/batch.train_many (proven equal to the per-client twin, which is proven equal to
the C), privatizes its Δ as the device does (clip, stochastic rounding to the grid, discrete
Gaussian σ_local in distributed/local mode: tools/fedref/privacy.privatize_many), the server
sums with the aggregator's `combine` (fixed denominator m), adds the aggregator's noise
(central mode: all of it; distributed: the top-up to K device shares, privacy.release_noise,
drawn vectorized) and counts ε with the aggregator's accountant for the event that ran. What
is simulated is the fleet, not the arithmetic.

Clients of `kws` are simulated speakers synthesized with seeds the model never saw (new
voices), in cached chunks; each client's embeddings are computed once by the TFLM runtime.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[2]
REPORT_DIR = ROOT / "build" / "report"
SPEAKERS_PER_CHUNK = 50
DATA_SEED_BASE = 10_000  # kws training uses seed 0: these speakers are new to the backbone
console = Console()


@dataclass(frozen=True)
class SimConfig:
    task: str = "kws"
    clients: int = 1000
    rounds: int = 20
    cohort: int = 100
    clip: float = 0.5
    noise_multipliers: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    modes: tuple[str, ...] = ("central", "distributed")  # DP modes run for each z > 0
    dropout: float = 0.0  # probability that a selected client does not answer
    bits: int = 8  # UPDATE value width (the aggregator's default)
    delta: float = 1e-5
    k: int = 10
    lr: float = 0.1
    epochs: int = 2
    batch: int = 8
    seed: int = 0


@dataclass(frozen=True)
class Clients:
    """Per-client k-shot training embeddings and pooled test embeddings."""

    train_emb: list[np.ndarray]
    train_y: list[np.ndarray]
    test_emb: np.ndarray
    test_y: np.ndarray


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _kws_chunk_embeddings(chunk: int, speakers: int) -> dict[str, np.ndarray]:
    """Embeddings of one chunk of new speakers (synthesized and embedded once, then cached)."""
    from model_gen import paths
    from model_gen.datasets.kws import load_kws
    from model_gen.embed import tflm_embeddings
    from model_gen.quantize import quantize_windows

    model = (paths.model_dir("kws") / paths.TFLITE_NAME).read_bytes()
    card = json.loads((paths.model_dir("kws") / paths.CARD_NAME).read_text())
    cache = paths.data_cache_dir() / (
        f"sim-kws-{card['tflite_sha256'][:12]}-{DATA_SEED_BASE + chunk}-{speakers}.npz"
    )
    if cache.exists():
        with np.load(cache) as npz:
            return {k: npz[k] for k in npz.files}
    data = load_kws(speakers=speakers, seed=DATA_SEED_BASE + chunk)
    q = card["input_quantization"]
    x = quantize_windows(data.x, q["scale"], q["zero_point"])
    arrays = {
        "emb": tflm_embeddings(model, x),
        "y": data.y,
        "client": data.device,
        "part": data.part,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **arrays)
    return arrays


def _clients_from_rows(
    emb: np.ndarray, y: np.ndarray, client: np.ndarray, part: np.ndarray, k: int, seed: int
) -> Clients:
    rng = np.random.default_rng(seed)
    train_emb, train_y = [], []
    for c in np.unique(client):
        rows = []
        for label in np.unique(y[(client == c) & (part == 0)]):
            own = np.flatnonzero((client == c) & (part == 0) & (y == label))
            rows.extend(rng.choice(own, size=min(k, len(own)), replace=False))
        rows = rng.permutation(np.asarray(rows))
        train_emb.append(emb[rows].astype(np.float32))
        train_y.append(y[rows].astype(np.int64))
    test = part == 1
    return Clients(train_emb, train_y, emb[test].astype(np.float32), y[test].astype(np.int64))


def load_clients(config: SimConfig) -> Clients:
    """kws: `clients` new simulated speakers; other tasks: the task's federated and held-out
    devices (devices.npz), embedded by the TFLM runtime."""
    if config.task != "kws":
        from model_gen import paths
        from model_gen.embed import device_embeddings

        emb = device_embeddings(config.task)["embedding"]
        with np.load(paths.model_dir(config.task) / paths.DEVICES_NAME) as devices:
            y, client, part = devices["y"], devices["device"], devices["part"]
        return _clients_from_rows(emb, y.astype(np.int64), client, part, config.k, config.seed)
    chunks = -(-config.clients // SPEAKERS_PER_CHUNK)
    parts: list[dict[str, np.ndarray]] = []
    with _progress() as progress:
        bar = progress.add_task(
            "speakers: synthesize + TFLM embeddings (cached)", total=config.clients
        )
        for chunk in range(chunks):
            size = min(SPEAKERS_PER_CHUNK, config.clients - chunk * SPEAKERS_PER_CHUNK)
            arrays = _kws_chunk_embeddings(chunk, size)
            arrays["client"] = arrays["client"] + chunk * SPEAKERS_PER_CHUNK
            parts.append(arrays)
            progress.advance(bar, size)
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return _clients_from_rows(
        merged["emb"], merged["y"], merged["client"], merged["part"], config.k, config.seed
    )


@dataclass(frozen=True)
class SimSetup:
    """What every round of one curve shares: the aggregator config of (mode, z), the client
    population, its sampling plan and the devices' privacy parameters."""

    agg: Any  # AggregatorConfig
    population: Any  # sampling.Population
    plan: Any  # sampling.SamplingPlan
    device: Any  # tools.fedref.privacy.PrivacyParams
    scale: float


def sim_setup(config: SimConfig, z: float, mode: str, n: int) -> SimSetup:
    from tools.aggregator import privacy, sampling
    from tools.aggregator.config import AggregatorConfig, PrivacyMode, PrivacyUnit
    from tools.fedref.privacy import PrivacyParams

    agg = AggregatorConfig(
        privacy=PrivacyMode(mode) if z > 0 else PrivacyMode.NONE,
        noise_multiplier=z or 1.0,
        clip=config.clip,
        delta=config.delta,
        cohort_size=config.cohort,
        unit=PrivacyUnit.DEVICE,
        bits=config.bits,
    )
    population = sampling.Population.from_enrollment(
        {c: f"client-{c}" for c in range(n)}, PrivacyUnit.DEVICE
    )
    plan = sampling.plan(agg, population)
    sigma = privacy.plan_noise_std(agg, plan)
    scale = privacy.grid_scale(agg, sigma)
    return SimSetup(agg, population, plan, PrivacyParams(agg.clip, sigma, scale, agg.bits), scale)


def client_stream_seed(config: SimConfig, round_id: int, client: int) -> int:
    """The seed of a client's ChaCha20 shuffle stream in a round."""
    return config.seed * 1_000_003 + round_id * 10_007 + client


def server_step(
    setup: SimSetup,
    w: np.ndarray,
    b: np.ndarray,
    sent: np.ndarray,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """The server half of a round (also the Flower simulation's, tools/flower/simulation.py):
    combine the devices' dequantized updates `sent` with the aggregator's noise (central, or
    the distributed top-up to K shares; drawn vectorized from `rng` when given), the fixed
    denominator in central/distributed mode, apply, and return the accountant's event."""
    from tools.aggregator import privacy
    from tools.aggregator.core import FIXED_DENOMINATOR
    from tools.aggregator.strategy import combine

    agg, plan = setup.agg, setup.plan
    denominator = plan.expected_devices if agg.privacy in FIXED_DENOMINATOR else 0.0
    noise = privacy.release_noise(agg, plan, len(sent), sent.shape[1], rng)
    mean = combine(sent.astype(np.float64), agg, noise, denominator)
    w = w + mean[: w.size].reshape(w.shape).astype(np.float32)
    b = b + mean[w.size :].astype(np.float32)
    event = privacy.round_event(agg, plan, len(sent), sent.shape[1])
    return w, b, event


def accuracy_of(clients: Clients, w: np.ndarray, b: np.ndarray) -> float:
    logits = clients.test_emb @ w + b
    return float(np.mean(np.argmax(logits, axis=1) == clients.test_y))


def simulate_one(
    config: SimConfig,
    clients: Clients,
    z: float,
    w0: np.ndarray,
    b0: np.ndarray,
    mode: str = "central",
) -> dict[str, Any]:
    """R rounds of DP-FedAvg in `mode` with noise multiplier z (0: privacy none); accuracy,
    ε (the aggregator's accountant) and the number of updates received, by round."""
    return federate(config, clients, z, w0, b0, mode)[0]


def federate(
    config: SimConfig,
    clients: Clients,
    z: float,
    w0: np.ndarray,
    b0: np.ndarray,
    mode: str = "central",
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """simulate_one's curves, and the final global head (w, b)."""
    import secrets

    from tools.aggregator import privacy, sampling
    from tools.fedref.batch import train_many
    from tools.fedref.head import TrainParams
    from tools.fedref.privacy import dequantize, privatize_many
    from tools.fedref.rng import Rng

    params = TrainParams(lr=config.lr, epochs=config.epochs, batch=config.batch)
    n = len(clients.train_y)
    setup = sim_setup(config, z, mode, n)
    agg, plan = setup.agg, setup.plan
    noise_rng = np.random.default_rng(secrets.randbits(128))
    w, b = w0.copy(), b0.copy()
    accuracy, epsilon, received, events = [], [], [], []
    for round_id in range(1, config.rounds + 1):
        chosen = [
            c
            for c in sampling.poisson_sample(setup.population, plan.q, plan.cap)
            if noise_rng.random() >= config.dropout
        ]
        received.append(len(chosen))
        if chosen:  # an empty round releases nothing and charges nothing
            streams = [Rng.from_u64(client_stream_seed(config, round_id, c)) for c in chosen]
            wl, bl, _, _ = train_many(
                w,
                b,
                [clients.train_emb[c] for c in chosen],
                [clients.train_y[c] for c in chosen],
                params,
                streams,
            )
            deltas = np.concatenate([(wl - w).reshape(len(chosen), -1), bl - b], axis=1)
            sent = dequantize(privatize_many(deltas, setup.device, noise_rng), setup.scale)
            w, b, event = server_step(setup, w, b, sent, noise_rng)
            events += [event] if event is not None else []
        epsilon.append(privacy.ledger_epsilon(agg, events) if z > 0 else None)
        accuracy.append(accuracy_of(clients, w, b))
    curves = {
        "mode": str(agg.privacy),
        "noise_multiplier": z,
        "sampling_q": plan.q,
        "accuracy_by_round": accuracy,
        "epsilon_by_round": epsilon,
        "received_by_round": received,
    }
    return curves, w, b


def pooled_head_accuracy(
    clients: Clients, w0: np.ndarray, b0: np.ndarray, steps: int = 400, lr: float = 0.5
) -> float:
    """What the best head on the frozen backbone reaches: every client's k-shot windows pooled
    in one place (no privacy, no federation), softmax regression from the pre-trained head by
    full-batch gradient descent in float64, scored on the same test windows. Federation of the
    head alone cannot beat this ceiling."""
    emb = np.concatenate(clients.train_emb).astype(np.float64)
    y = np.concatenate(clients.train_y)
    w, b = w0.astype(np.float64), b0.astype(np.float64)
    onehot = np.eye(w.shape[1])[y]
    for _ in range(steps):
        z = emb @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        g = p / p.sum(axis=1, keepdims=True) - onehot
        w -= lr * emb.T @ g / len(y)
        b -= lr * g.mean(axis=0)
    return float(np.mean(np.argmax(clients.test_emb @ w + b, axis=1) == clients.test_y))


def run_simulation(config: SimConfig) -> dict[str, Any]:
    from model_gen import paths
    from model_gen.freshness import ensure_trained

    started = time.perf_counter()
    ensure_trained(config.task)
    clients = load_clients(config)
    config = replace(config, clients=len(clients.train_y))
    head = np.load(paths.model_dir(config.task) / paths.HEAD_NAME)
    w0, b0 = head["w"].astype(np.float32), head["b"].astype(np.float32)
    initial = float(np.mean(np.argmax(clients.test_emb @ w0 + b0, axis=1) == clients.test_y))
    runs = [
        (mode, z)
        for z in config.noise_multipliers
        for mode in (config.modes if z > 0 else ("none",))
    ]
    curves = []
    with _progress() as progress:
        bar = progress.add_task("modes × noise multipliers", total=len(runs))
        for mode, z in runs:
            curves.append(simulate_one(config, clients, z, w0, b0, mode))
            last = curves[-1]
            eps = last["epsilon_by_round"][-1]
            console.log(
                f"{mode} z = {z}: accuracy {last['accuracy_by_round'][-1]:.3f}, "
                f"ε = {'∞' if eps is None else f'{eps:.2f}'} (device-level, "
                f"q = {last['sampling_q']:.3g})"
            )
            progress.advance(bar)
    ceiling = pooled_head_accuracy(clients, w0, b0)
    console.log(
        f"pooled-data head on the frozen backbone (ceiling of head federation): {ceiling:.3f}"
    )
    report = {
        "config": asdict(config),
        "initial_acc": initial,
        "pooled_head_acc": ceiling,
        "curves": curves,
        "test_windows": len(clients.test_y),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    write_report(report)
    return report


def write_report(report: dict[str, Any], out_dir: Path = REPORT_DIR) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "simulate.json").write_text(json.dumps(report, indent=2) + "\n")
    cfg = report["config"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"central": "-", "distributed": "--", "local": ":", "none": "-"}
    zs = sorted({c["noise_multiplier"] for c in report["curves"]})
    for curve in report["curves"]:
        z = curve["noise_multiplier"]
        label = f"{curve['mode']} z = {z}" if z else "no noise"
        style = {"label": label, "color": f"C{zs.index(z)}", "linestyle": styles[curve["mode"]]}
        left.plot(
            range(1, len(curve["accuracy_by_round"]) + 1), curve["accuracy_by_round"], **style
        )
        if z:
            right.plot(curve["epsilon_by_round"], curve["accuracy_by_round"], marker=".", **style)
    left.axhline(report["initial_acc"], color="grey", linestyle=":", label="pre-trained")
    if "pooled_head_acc" in report:
        left.axhline(
            report["pooled_head_acc"], color="black", linestyle="--", label="pooled-data head"
        )
    left.set(
        xlabel="round",
        ylabel="global accuracy (clients' test data)",
        title=f"{cfg['task']}: {cfg['clients']} clients, cohort {cfg['cohort']}",
    )
    right.set(
        xlabel=f"ε at δ = {cfg['delta']:g} (device-level, against head consumers)",
        ylabel="global accuracy",
        title="privacy / utility by mode (same colour: same z)",
    )
    for ax in (left, right):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "simulate.png", dpi=120)
    plt.close(fig)
