"""`invoke train`: data -> float model -> int8 backbone -> TFLM verification -> artifacts.

Writes build/model/<task>/: backbone_int8.tflite, head_init.npz, model_card.json, splits.json,
devices.npz (int8 windows of every federated and held-out device). Every number in the
model card is computed in this run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_gen import VERSION, paths
from model_gen.augment import ImuAugment, augment_imu
from model_gen.datasets import OWN, SPLITS, TaskData, devices_of, load_task, split_users
from model_gen.quantize import quantize_windows
from model_gen.tflite_info import TfliteInfo, check_supported, read_tflite

MAX_BACKBONE_BYTES = 64 * 1024
MAX_ARENA_BYTES = 32 * 1024
EMBED_DIM_RANGE = (32, 64)
REPRESENTATIVE_WINDOWS = 400


class ModelBudgetError(RuntimeError):
    """The trained backbone does not fit the microcontroller budget."""


@dataclass(frozen=True)
class TrainConfig:
    kind: str  # "imu" or "audio": which backbone family
    epochs: int
    batch: int = 64
    learning_rate: float = 2e-3
    split_fractions: tuple[float, float] = (0.5, 0.3)  # pretrain, federated; rest held out
    seed: int = 0
    noise: float = 0.05  # augmentation: additive noise, in units of the data's std
    imu_augment: ImuAugment | None = None  # wrist IMU (6 axes): rotations, mirroring, warps


CONFIGS = {
    "watch": TrainConfig(kind="imu", epochs=40, imu_augment=ImuAugment()),
    "kws": TrainConfig(kind="audio", epochs=25, noise=0.1),
}


def config_for(task: str, data: TaskData) -> TrainConfig:
    if task in CONFIGS:
        return CONFIGS[task]
    return TrainConfig(kind="imu", epochs=40)  # user files: windows (1, T, C) like watch


def _augmented_batches(x: np.ndarray, y: np.ndarray, config: TrainConfig) -> object:
    """Random gain and noise per window (the backbone must not key on one user's amplitude),
    or for wrist IMU the fuller model_gen.augment set."""
    import keras

    std = float(np.std(x))

    class Augmented(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self._rng = np.random.default_rng(config.seed)
            self._order = self._rng.permutation(len(x))

        def __len__(self) -> int:
            return int(np.ceil(len(x) / config.batch))

        def on_epoch_end(self) -> None:
            self._order = self._rng.permutation(len(x))

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            rows = self._order[index * config.batch : (index + 1) * config.batch]
            batch = x[rows]
            if config.imu_augment is not None:
                return augment_imu(batch, self._rng, config.imu_augment, std), y[rows]
            gain_shape = (len(rows),) + (1,) * (batch.ndim - 2) + (batch.shape[-1],)
            gain = self._rng.uniform(0.8, 1.2, size=gain_shape).astype(np.float32)
            noise = self._rng.normal(0, config.noise * std, size=batch.shape).astype(np.float32)
            return batch * gain + noise, y[rows]

    return Augmented()


def fit_float_model(data: TaskData, train_rows: np.ndarray, config: TrainConfig) -> tuple:
    """Train backbone + head on the pre-training windows; returns (classifier, backbone)."""
    from model_gen.quantize import quiet_native_output

    with quiet_native_output():  # TensorFlow's import-time banners
        import keras

    from model_gen.model import SPECS, ModelSpec, build_classifier
    from model_gen.progress import RichProgress

    keras.utils.set_random_seed(config.seed)
    spec = SPECS.get(data.task, ModelSpec(embed_dim=48))
    classifier, backbone = build_classifier(config.kind, data.input_shape, data.num_classes, spec)
    steps = int(np.ceil(train_rows.sum() / config.batch)) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    classifier.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    batches = _augmented_batches(data.x[train_rows], data.y[train_rows], config)
    classifier.fit(batches, epochs=config.epochs, verbose=0,
                   callbacks=[RichProgress(f"train {data.task}")])
    return classifier, backbone


def head_weights(classifier: object) -> tuple[np.ndarray, np.ndarray]:
    from model_gen.model import HEAD_LAYER

    kernel, bias = classifier.get_layer(HEAD_LAYER).get_weights()
    return kernel.astype(np.float32), bias.astype(np.float32)


def check_budget(info: TfliteInfo, model: bytes, arena: int) -> None:
    check_supported(info)
    embed_dim = int(np.prod(info.output.shape[1:]))
    problems = []
    if len(model) > MAX_BACKBONE_BYTES:
        problems.append(f"backbone is {len(model)} bytes > {MAX_BACKBONE_BYTES}")
    if arena > MAX_ARENA_BYTES:
        problems.append(f"TFLM arena needs {arena} bytes > {MAX_ARENA_BYTES}")
    if not EMBED_DIM_RANGE[0] <= embed_dim <= EMBED_DIM_RANGE[1]:
        problems.append(f"embedding dim {embed_dim} outside {EMBED_DIM_RANGE}")
    if problems:
        raise ModelBudgetError("model does not fit the device: " + "; ".join(problems))


def evaluate(
    classifier: object, model: bytes, info: TfliteInfo, data: TaskData, rows: np.ndarray,
    w: np.ndarray, b: np.ndarray,
) -> dict[str, float]:
    """Float, int8-TFLite and int8-TFLM accuracy of backbone + float head on `rows`."""
    from model_gen.embed import dequantize, tflm_int8_outputs
    from model_gen.verify import head_accuracy, tflite_int8_outputs

    x, y = data.x[rows], data.y[rows]
    logits = classifier.predict(x, verbose=0, batch_size=256)
    x_int8 = quantize_windows(x, info.input.scale, info.input.zero_point)
    out = info.output
    tflite_emb = dequantize(tflite_int8_outputs(model, x_int8), out.scale, out.zero_point)
    tflm_emb = dequantize(tflm_int8_outputs(model, x_int8), out.scale, out.zero_point)
    return {
        "float_acc": float(np.mean(np.argmax(logits, axis=1) == y)),
        "int8_tflite_acc": head_accuracy(tflite_emb, w, b, y),
        "int8_tflm_acc": head_accuracy(tflm_emb, w, b, y),
    }


def write_devices(
    folder: Path, data: TaskData, splits: dict[str, list[str]], info: TfliteInfo
) -> dict[str, int]:
    """devices.npz: int8 windows of every federated and held-out device (demo replay data)."""
    device_split = {d: s for s in SPLITS for d in devices_of(data, splits[s])}
    kept = [d for d in range(len(data.device_names)) if device_split[d] != "pretrain"]
    rows = data.rows_of_devices(kept)
    np.savez_compressed(
        folder / paths.DEVICES_NAME,
        x=quantize_windows(data.x[rows], info.input.scale, info.input.zero_point),
        y=data.y[rows].astype(np.int16),
        device=np.asarray([kept.index(d) for d in data.device[rows]], dtype=np.int32),
        part=data.part[rows],  # 0 = own (on-device, labelled), 1 = test
        device_name=np.asarray([data.device_names[d] for d in kept]),
        device_user=np.asarray([data.device_users[d] for d in kept]),
        device_split=np.asarray([device_split[d] for d in kept]),
        labels=np.asarray(data.labels),
        input_scale=np.float32(info.input.scale),
        input_zero_point=np.int32(info.input.zero_point),
    )
    return {s: sum(1 for d in kept if device_split[d] == s) for s in ("federated", "heldout")}


def model_card(
    data: TaskData, splits: dict[str, list[str]], model: bytes, info: TfliteInfo, arena: int,
    accuracy: dict[str, float], seconds: float, config: TrainConfig,
) -> dict:
    return {
        "task": data.task,
        "model_gen_version": VERSION,
        "labels": data.labels,
        "num_classes": data.num_classes,
        "embedding_dim": int(np.prod(info.output.shape[1:])),
        "input_shape": list(info.input.shape[1:]),
        "input_len": int(np.prod(info.input.shape[1:])),
        "input_quantization": {"scale": info.input.scale, "zero_point": info.input.zero_point},
        "embedding_quantization": {"scale": info.output.scale,
                                   "zero_point": info.output.zero_point},
        "users": splits,
        "devices": {s: [data.device_names[d] for d in devices_of(data, splits[s])]
                    for s in SPLITS},
        "split_seed": config.seed,
        "accuracy_eval": "backbone + head_init on every window of the held-out users",
        **accuracy,
        "backbone_bytes": len(model),
        "arena_bytes": arena,
        "ops": info.ops,
        "tflite_sha256": hashlib.sha256(model).hexdigest(),
        "train_epochs": config.epochs,
        "train_seconds": round(seconds, 1),
    }


def train_task(task: str, **data_options: object) -> dict:
    """Run the whole pipeline for one task and return its model card."""
    from model_gen.verify import smallest_arena

    started = time.monotonic()
    data = load_task(task, **data_options)
    config = config_for(task, data)
    splits = split_users(data.users(), config.split_fractions, config.seed)
    train_rows = data.rows_of_devices(devices_of(data, splits["pretrain"]))
    heldout_rows = data.rows_of_devices(devices_of(data, splits["heldout"]))
    classifier, backbone = fit_float_model(data, train_rows, config)
    rng = np.random.default_rng(config.seed)
    pool = np.flatnonzero(train_rows & (data.part == OWN))
    calibration = data.x[rng.choice(pool, min(REPRESENTATIVE_WINDOWS, len(pool)), replace=False)]
    from model_gen.quantize import quantize_backbone

    model = quantize_backbone(backbone, calibration)
    info = read_tflite(model)
    check_supported(info)
    probe = quantize_windows(data.x[heldout_rows][:4], info.input.scale, info.input.zero_point)
    arena = smallest_arena(model, probe)
    check_budget(info, model, arena)
    w, b = head_weights(classifier)
    accuracy = evaluate(classifier, model, info, data, heldout_rows, w, b)
    folder = paths.model_dir(data.task)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / paths.TFLITE_NAME).write_bytes(model)
    np.savez(folder / paths.HEAD_NAME, w=w, b=b)
    write_devices(folder, data, splits, info)
    (folder / paths.SPLITS_NAME).write_text(json.dumps(
        {"seed": config.seed, "users": splits}, indent=2) + "\n")
    card = model_card(data, splits, model, info, arena, accuracy,
                      time.monotonic() - started, config)
    (folder / paths.CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")
    return card
