"""Where the pipeline reads and writes (everything under build/, never committed)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ("watch", "kws")
BUILD_ENV = "FEDHEAD_BUILD_DIR"  # tests point the whole pipeline at a temporary build folder


def build_root() -> Path:
    return Path(os.environ.get(BUILD_ENV) or REPO / "build")


def model_dir(task: str) -> Path:
    """Trained artifacts of one task: build/model/<task>/."""
    return build_root() / "model" / task


def generated_dir(task: str) -> Path:
    """Emitted C of one task: build/generated/<task>/."""
    return build_root() / "generated" / task


def data_cache_dir() -> Path:
    """Cached synthetic data sets (kws speakers): build/data/."""
    return build_root() / "data"


TFLITE_NAME = "backbone_int8.tflite"
HEAD_NAME = "head_init.npz"
CARD_NAME = "model_card.json"
SPLITS_NAME = "splits.json"
DEVICES_NAME = "devices.npz"
EMBEDDINGS_NAME = "embeddings.npz"
