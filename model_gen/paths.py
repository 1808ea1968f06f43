"""Where the pipeline reads and writes (everything under build/, never committed)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
TASKS = ("watch", "kws")


def model_dir(task: str) -> Path:
    """Trained artifacts of one task: build/model/<task>/."""
    return BUILD / "model" / task


def generated_dir(task: str) -> Path:
    """Emitted C of one task: build/generated/<task>/."""
    return BUILD / "generated" / task


def data_cache_dir() -> Path:
    """Cached synthetic data sets (kws speakers): build/data/."""
    return BUILD / "data"


TFLITE_NAME = "backbone_int8.tflite"
HEAD_NAME = "head_init.npz"
CARD_NAME = "model_card.json"
SPLITS_NAME = "splits.json"
DEVICES_NAME = "devices.npz"
EMBEDDINGS_NAME = "embeddings.npz"
