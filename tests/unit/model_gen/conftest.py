"""A tiny model trained end to end through the real pipeline, once per test session.

The pipeline runs for real (TensorFlow training, int8 conversion, TFLM runtime, Jinja emit)
on a small synthetic user-data file, with FEDHEAD_BUILD_DIR pointing at a temporary folder
so nothing under build/ is touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from model_gen import paths

TINY_TASK = "tinyimu"


@dataclass(frozen=True)
class TinyBuild:
    task: str
    root: Path
    card: dict

    @property
    def model_dir(self) -> Path:
        return self.root / "model" / self.task

    @property
    def generated_dir(self) -> Path:
        return self.root / "generated" / self.task


def synthetic_imu(users: int = 6, classes: int = 3, per_class: int = 24) -> dict[str, np.ndarray]:
    """Classes differ in frequency and axis; users in gain and noise level."""
    rng = np.random.default_rng(7)
    t = np.arange(32, dtype=np.float32) / 32
    xs, ys, us = [], [], []
    for user in range(users):
        gain, noise = rng.uniform(0.7, 1.3), rng.uniform(0.1, 0.3)
        for cls in range(classes):
            for _ in range(per_class):
                window = rng.normal(0, noise, size=(32, 3)).astype(np.float32)
                phase = rng.uniform(0, 2 * np.pi)
                window[:, cls] += gain * np.sin(2 * np.pi * (cls + 1) * 2 * t + phase)
                xs.append(window)
                ys.append(cls)
                us.append(f"user{user}")
    return {"x": np.stack(xs), "y": np.asarray(ys, dtype=np.int64), "user": np.asarray(us),
            "labels": np.asarray(["slow", "medium", "fast"])}


@contextmanager
def _build_dir(root: Path) -> Iterator[None]:
    """Point the pipeline at `root` for the duration of the block only."""
    previous = os.environ.get(paths.BUILD_ENV)
    os.environ[paths.BUILD_ENV] = str(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(paths.BUILD_ENV, None)
        else:
            os.environ[paths.BUILD_ENV] = previous


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fedhead_build")


@pytest.fixture(autouse=True)
def _pipeline_in_build_root(build_root: Path) -> Iterator[None]:
    """Each model_gen test sees the temporary build; tests elsewhere keep the real build/."""
    with _build_dir(build_root):
        yield


@pytest.fixture(scope="session")
def tiny_build(build_root: Path) -> TinyBuild:
    from model_gen.emit import emit
    from model_gen.train import train_task

    with _build_dir(build_root):  # trained once per session, in the temporary build only
        data_file = build_root / f"{TINY_TASK}.npz"
        np.savez(data_file, **synthetic_imu())
        card = train_task(str(data_file))
        emit(TINY_TASK)
    return TinyBuild(task=TINY_TASK, root=build_root, card=card)
