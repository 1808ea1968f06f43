"""The demo's per-device data: k labelled windows per class to personalize from, and a test set.

Reads build/model/<task>/devices.npz (written by `invoke train`): int8 windows of every
federated and held-out device, each row marked as the device's own part (on-device data,
earlier in time) or its test part (later, after a gap). The evaluation protocol of DESIGN §5:
a device personalizes from k labelled windows per class of its own part and is scored on its
whole test part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OWN, TEST = 0, 1


@dataclass(frozen=True)
class DeviceData:
    index: int
    name: str
    user: str
    split: str  # "federated" or "heldout"
    own_x: np.ndarray  # int8 windows of the device's own part, time order
    own_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def shots(self, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """k labelled windows per class from the own part (fewer where a class has fewer)."""
        rng = np.random.default_rng([seed, self.index, k])
        chosen = []
        for label in np.unique(self.own_y):
            rows = np.flatnonzero(self.own_y == label)
            chosen.extend(rng.choice(rows, size=min(k, len(rows)), replace=False))
        order = rng.permutation(np.asarray(chosen))
        return self.own_x[order], self.own_y[order]


@dataclass(frozen=True)
class FleetData:
    task: str
    labels: list[str]
    devices: list[DeviceData]

    def of_split(self, split: str) -> list[DeviceData]:
        return [d for d in self.devices if d.split == split]


def load_fleet_data(devices_npz: Path, task: str) -> FleetData:
    """Every device of devices.npz with its own and test windows (flattened to bytes order)."""
    with np.load(devices_npz) as npz:
        x = npz["x"].reshape(len(npz["x"]), -1)
        y, device, part = npz["y"].astype(np.int64), npz["device"], npz["part"]
        names, users, splits = npz["device_name"], npz["device_user"], npz["device_split"]
        labels = [str(label) for label in npz["labels"]]
    devices = []
    for index, name in enumerate(names):
        own = (device == index) & (part == OWN)
        test = (device == index) & (part == TEST)
        devices.append(DeviceData(index, str(name), str(users[index]), str(splits[index]),
                                  x[own], y[own], x[test], y[test]))
    return FleetData(task, labels, devices)


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    if len(truth) == 0:
        raise ValueError("no test windows to score on")
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))
