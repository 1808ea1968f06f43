"""User-level cross-validation: every user is held out once, never seen by its fold's model.

Protocol (the demo's, repeated over folds; docs/EVALUATION.md):
- Users are permuted with the seed and cut into `folds` groups; fold i holds out group i.
- Of the remaining users, `pretrain_users` train the backbone and head (model_gen's own
  training, int8 quantization, TFLM embeddings) and the rest are the federated users: they run
  `rounds` of DP-FedAvg on their k = `fed_k` shots (tools/fleet/simulator.federate, central
  noise z·C, 8-bit updates), which gives the fold's global head.
- Each held-out device (a user's wrist) takes k labelled windows per class from its own part
  (earlier in time), `repeats` independent draws per k, and is scored on its test part (later,
  after the gap): global head as is, personal head (on-device training from the global head,
  the Python twin proven equal to fedcore), and local-only (the same training from zero).
- Statistics over users (tools/evaluate/stats.py): mean and 95 % t interval.
Each fold's model and embeddings are cached under build/eval/<task>/ by their inputs' hash.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from tools.demo.device_eval import LocalTraining
from tools.link.messages import TRAIN_IMPRINT_STRENGTH

console = Console()
METRICS = ("global_acc", "personal_acc", "local_only_acc", "finetune_acc", "imprint_first_acc")
PAIRS = (
    ("personal_acc", "local_only_acc"),
    ("personal_acc", "global_acc"),
    ("finetune_acc", "local_only_acc"),
    ("imprint_first_acc", "local_only_acc"),
)


@dataclass(frozen=True)
class EvalConfig:
    task: str = "watch"
    folds: int = 5
    pretrain_users: int = 5  # of the users not held out; the rest are federated
    ks: tuple[int, ...] = (2, 5, 10)
    repeats: int = 10  # shot draws per held-out device and k (cheap: the twin is vectorized)
    rounds: int = 5  # federated rounds (the demo's)
    fed_k: int = 10
    fed_lr: float = 0.1
    fed_epochs: int = 2
    clip: float = 0.5
    noise_multiplier: float = 1.0  # central noise z·C on the sum (0: none)
    personal: LocalTraining = field(default_factory=LocalTraining)
    seed: int = 0
    # Whose test windows are scored: "heldout" (the result), or "federated", the selection set
    # for choosing personalization settings without looking at held-out users (the backbone
    # never saw them; their global head did, through 5 noised rounds on 10 shots per class).
    scored: str = "heldout"
    # Prototype strength of the personal head. The device's is TRAIN_IMPRINT_STRENGTH (1); other
    # values are for choosing it on the selection set (scored="federated") only.
    imprint_strength: float = TRAIN_IMPRINT_STRENGTH

    def __post_init__(self) -> None:
        if self.scored not in ("heldout", "federated"):
            raise ValueError(f"scored must be 'heldout' or 'federated', got {self.scored!r}")
        if self.scored == "heldout" and self.imprint_strength != TRAIN_IMPRINT_STRENGTH:
            raise ValueError(
                f"held-out users are scored with the device's imprint strength "
                f"{TRAIN_IMPRINT_STRENGTH}; try other strengths with scored='federated'"
            )


@dataclass
class FoldModel:
    """What one fold's training leaves: its heads and the embeddings of every window."""

    users: dict[str, list[str]]
    w: np.ndarray
    b: np.ndarray
    embedding: np.ndarray  # (N, D) int8 backbone (TFLM) embeddings of every window, dequantized
    float_acc: float  # float model on the held-out users' windows
    int8_acc: float  # int8 backbone (TFLM) + float head on the same windows
    backbone_bytes: int


def fold_users(users: list[str], config: EvalConfig) -> list[dict[str, list[str]]]:
    """pretrain / federated / heldout users of every fold; each user is held out exactly once."""
    order = [users[i] for i in np.random.default_rng(config.seed).permutation(len(users))]
    groups = np.array_split(np.asarray(order), config.folds)
    folds = []
    for i, held in enumerate(groups):
        rest = [u for u in order if u not in set(held)]
        rest = [rest[j] for j in np.random.default_rng([config.seed, i]).permutation(len(rest))]
        folds.append(
            {
                "pretrain": sorted(rest[: config.pretrain_users]),
                "federated": sorted(rest[config.pretrain_users :]),
                "heldout": sorted(str(u) for u in held),
            }
        )
    return folds


def _cache_path(task: str, users: dict[str, list[str]]) -> Path:
    from model_gen import paths
    from model_gen.freshness import train_inputs_hash

    key = train_inputs_hash(
        task, {"crossval_pretrain": users["pretrain"], "heldout": users["heldout"]}
    )
    return paths.build_root() / "eval" / task / f"fold-{key[:16]}.npz"


def train_fold(data: Any, users: dict[str, list[str]]) -> FoldModel:
    """model_gen's training on the fold's pretraining users (cached)."""
    cache = _cache_path(data.task, users)
    if cache.exists():
        with np.load(cache) as z:
            return FoldModel(
                users,
                z["w"],
                z["b"],
                z["embedding"],
                float(z["float_acc"]),
                float(z["int8_acc"]),
                int(z["backbone_bytes"]),
            )
    from model_gen.datasets import OWN, devices_of
    from model_gen.embed import tflm_embeddings
    from model_gen.quantize import quantize_backbone, quantize_windows
    from model_gen.tflite_info import read_tflite
    from model_gen.train import REPRESENTATIVE_WINDOWS, config_for, fit_float_model, head_weights

    config = config_for(data.task, data)
    train_rows = data.rows_of_devices(devices_of(data, users["pretrain"]))
    held_rows = data.rows_of_devices(devices_of(data, users["heldout"]))
    classifier, backbone = fit_float_model(data, train_rows, config)
    pool = np.flatnonzero(train_rows & (data.part == OWN))
    rng = np.random.default_rng(config.seed)
    calibration = data.x[rng.choice(pool, min(REPRESENTATIVE_WINDOWS, len(pool)), replace=False)]
    model = quantize_backbone(backbone, calibration)
    info = read_tflite(model)
    embedding = tflm_embeddings(
        model, quantize_windows(data.x, info.input.scale, info.input.zero_point)
    )
    w, b = head_weights(classifier)
    logits = classifier.predict(data.x[held_rows], verbose=0, batch_size=256)
    y = data.y[held_rows]
    fold = FoldModel(
        users,
        w,
        b,
        embedding,
        float(np.mean(np.argmax(logits, axis=1) == y)),
        float(np.mean(np.argmax(embedding[held_rows] @ w + b, axis=1) == y)),
        len(model),
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        w=w,
        b=b,
        embedding=embedding,
        float_acc=fold.float_acc,
        int8_acc=fold.int8_acc,
        backbone_bytes=fold.backbone_bytes,
    )
    return fold


def shot_rows(data: Any, device: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k windows per class from the device's own part, in random order (DeviceData.shots)."""
    from model_gen.datasets import OWN

    chosen = []
    for label in range(data.num_classes):
        own = np.flatnonzero((data.device == device) & (data.part == OWN) & (data.y == label))
        if len(own):
            chosen.extend(rng.choice(own, size=min(k, len(own)), replace=False))
    return rng.permutation(np.asarray(chosen))


def global_head(
    data: Any, fold: FoldModel, config: EvalConfig, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """The fold's pretrained head after federated rounds on its federated devices."""
    from model_gen.datasets import TEST, devices_of
    from tools.fleet.simulator import Clients, SimConfig, federate

    fed_devices = devices_of(data, fold.users["federated"])
    if not fed_devices or config.rounds == 0:
        return fold.w, fold.b
    rng = np.random.default_rng([config.seed, index, 1])
    shots = [shot_rows(data, d, config.fed_k, rng) for d in fed_devices]
    test = data.rows_of_devices(fed_devices) & (data.part == TEST)
    clients = Clients(
        [fold.embedding[s] for s in shots],
        [data.y[s] for s in shots],
        fold.embedding[test],
        data.y[test],
    )
    sim = SimConfig(
        task=data.task,
        clients=len(shots),
        rounds=config.rounds,
        cohort=len(shots),
        clip=config.clip,
        lr=config.fed_lr,
        epochs=config.fed_epochs,
        batch=config.personal.batch,
        seed=config.seed + index,
    )
    _, w, b = federate(sim, clients, config.noise_multiplier, fold.w, fold.b)
    return w.astype(np.float32), b.astype(np.float32)


def _accuracies(
    w: np.ndarray, b: np.ndarray, tests: list[tuple[np.ndarray, np.ndarray]]
) -> list[float]:
    return [
        float(np.mean(np.argmax(e @ w[i] + b[i], axis=1) == y)) for i, (e, y) in enumerate(tests)
    ]


def _trained(
    w0: np.ndarray,
    b0: np.ndarray,
    embs: list[np.ndarray],
    labels: list[np.ndarray],
    params: Any,
    seeds: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Each client's head after on-device training (the vectorized twin): (K, d, c), (K, c)."""
    from tools.fedref.batch import train_many
    from tools.fedref.rng import Rng

    w, b, _, _ = train_many(w0, b0, embs, labels, params, [Rng.from_u64(s) for s in seeds])
    return w, b


def _imprinted(
    w: np.ndarray, b: np.ndarray, embs: list[np.ndarray], labels: list[np.ndarray], strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each client's head (w[i], b[i]) plus its own class prototypes (fc_head_imprint's twin)."""
    from tools.fedref.head import imprint

    heads = [
        imprint(w[i], b[i], e, y, strength)
        for i, (e, y) in enumerate(zip(embs, labels, strict=True))
    ]
    return np.stack([h[0] for h in heads]), np.stack([h[1] for h in heads])


def evaluate_heldout(
    data: Any, fold: FoldModel, w_g: np.ndarray, b_g: np.ndarray, config: EvalConfig, index: int
) -> list[dict[str, Any]]:
    """One row per scored device (held-out, or federated for selection), k and repeat: global,
    personal and local-only accuracy."""
    from model_gen.datasets import TEST, devices_of

    devices = devices_of(data, fold.users[config.scored])
    rows = []
    params = config.personal.params()
    for k in config.ks:
        runs = [(d, r) for d in devices for r in range(config.repeats)]
        shots = [
            shot_rows(data, d, k, np.random.default_rng([config.seed, index, d, k, r]))
            for d, r in runs
        ]
        tests = [
            (
                fold.embedding[(data.device == d) & (data.part == TEST)],
                data.y[(data.device == d) & (data.part == TEST)],
            )
            for d, _ in runs
        ]
        embs, labels = [fold.embedding[s] for s in shots], [data.y[s] for s in shots]

        seeds = [config.seed * 7919 + index * 1009 + i for i in range(len(runs))]
        n = len(runs)
        w_all, b_all = np.broadcast_to(w_g, (n, *w_g.shape)), np.broadcast_to(b_g, (n, *b_g.shape))
        glob = _accuracies(w_all, b_all, tests)
        tuned = _trained(w_g, b_g, embs, labels, params, seeds)  # the device's TRAIN from global
        finetune = _accuracies(*tuned, tests)
        # TRAIN_IMPRINT: the trained head plus the device's class prototypes (device.c order)
        personal = (
            _accuracies(*_imprinted(*tuned, embs, labels, config.imprint_strength), tests)
            if config.personal.imprint
            else finetune
        )
        # the previous personalization: prototypes first, then training
        start = _imprinted(w_all, b_all, embs, labels, config.imprint_strength)
        imprint_first = _accuracies(*_trained(*start, embs, labels, params, seeds), tests)
        zeros = (np.zeros_like(w_g), np.zeros_like(b_g))
        local = _accuracies(*_trained(*zeros, embs, labels, params, seeds), tests)
        for i, (d, r) in enumerate(runs):
            rows.append(
                {
                    "fold": index,
                    "user": data.device_users[d],
                    "device": data.device_names[d],
                    "k": k,
                    "repeat": r,
                    "global_acc": glob[i],
                    "personal_acc": personal[i],
                    "local_only_acc": local[i],
                    "finetune_acc": finetune[i],
                    "imprint_first_acc": imprint_first[i],
                }
            )
    return rows


def run_crossval(config: EvalConfig) -> dict[str, Any]:
    """Every fold, then the statistics; returns the report (see write_report)."""
    from model_gen.datasets import load_task
    from tools.evaluate.stats import summarize

    started = time.perf_counter()
    data = load_task(config.task)
    folds = fold_users(data.users(), config)
    rows: list[dict[str, Any]] = []
    fold_info = []
    from tools.fleet.simulator import _progress  # the same bar as `invoke simulate`

    with _progress() as progress:
        bar = progress.add_task("folds (train backbone, federate, personalize)", total=len(folds))
        for index, users in enumerate(folds):
            fold = train_fold(data, users)
            w_g, b_g = global_head(data, fold, config, index)
            rows += evaluate_heldout(data, fold, w_g, b_g, config, index)
            fold_info.append(
                {
                    "users": users,
                    "float_acc": fold.float_acc,
                    "int8_acc": fold.int8_acc,
                    "backbone_bytes": fold.backbone_bytes,
                }
            )
            console.log(
                f"fold {index}: held out {', '.join(users['heldout'])}; float "
                f"{fold.float_acc:.3f}, int8 {fold.int8_acc:.3f}"
            )
            progress.advance(bar)
    by_k = {str(k): summarize([r for r in rows if r["k"] == k], METRICS, PAIRS) for k in config.ks}
    int8 = {
        "float_acc": [f["float_acc"] for f in fold_info],
        "int8_acc": [f["int8_acc"] for f in fold_info],
    }
    return {
        "config": asdict(config),
        "folds": fold_info,
        "by_k": by_k,
        "int8_drop_mean": float(np.mean(np.subtract(int8["float_acc"], int8["int8_acc"]))),
        "users": len(data.users()),
        "rows": rows,
        "wall_s": round(time.perf_counter() - started, 1),
    }
