"""`watch`: wrist IMU shoulder exercises shipped inside the seglearn wheel.

10 subjects x 2 wrists x 7 exercises, 6 axes (accelerometer, gyroscope) at 50 Hz; each
recording is one subject doing one exercise with one wrist. A device is one subject's wrist;
the user is the subject. Windows are 2 s (100 samples) with a 1 s hop, shaped (1, 100, 6)
(NHWC with H = 1) so the 1-D convolutions convert to plain CONV_2D without EXPAND_DIMS.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from model_gen.datasets import TaskData, sliding_windows, time_split_parts

WINDOW = 100  # samples: 2 s at 50 Hz
HOP = 50  # 1 s
OWN_FRACTION = 0.6  # earlier part of each recording: the device's own data (>= 10 per class)
GAP_WINDOWS = 1  # with a hop of half a window, one dropped window keeps own and test disjoint


def watch_file() -> Path:
    spec = importlib.util.find_spec("seglearn")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the seglearn package (which ships the watch data) is missing")
    # seglearn's __init__ needs pandas; the data file does not, so locate it without importing.
    return Path(spec.origin).parent / "data" / "watch_dataset.npy"


def load_watch() -> TaskData:
    raw = np.load(watch_file(), allow_pickle=True).item()
    names = [f"s{int(s):02d}-{'right' if side else 'left'}" for s, side in zip(
        raw["subject"], raw["side"], strict=True)]
    device_names = sorted(set(names))
    xs, ys, devs, parts = [], [], [], []
    for recording, label, name in zip(raw["X"], raw["y"], names, strict=True):
        windows = sliding_windows(np.asarray(recording, dtype=np.float32), WINDOW, HOP)
        # Each recording holds one exercise, so split each recording in time: the device's
        # own part then has every class, and its test windows come strictly later.
        part = time_split_parts(len(windows), OWN_FRACTION, GAP_WINDOWS)
        keep = part >= 0
        xs.append(windows[keep])
        parts.append(part[keep].astype(np.uint8))
        ys.append(np.full(int(keep.sum()), int(label), dtype=np.int64))
        devs.append(np.full(int(keep.sum()), device_names.index(name), dtype=np.int64))
    return TaskData(
        task="watch",
        labels=[str(label) for label in raw["y_labels"]],
        x=np.concatenate(xs)[:, None, :, :],
        y=np.concatenate(ys),
        device=np.concatenate(devs),
        part=np.concatenate(parts),
        device_names=device_names,
        device_users=[name.split("-")[0] for name in device_names],
    )
