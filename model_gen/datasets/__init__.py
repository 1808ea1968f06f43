"""Task data sets in one shape: windows, labels, and which device/user/time part each came from.

Every task (watch, kws, user files) produces a `TaskData`. A *device* is one stream of data
(a subject's wrist, a speaker); a *user* owns one or more devices (watch: the subject, whose
two wrists are two devices). Users, never devices, are split into pretrain / federated /
held-out groups so nothing of a held-out person is seen in pre-training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OWN, TEST = 0, 1  # time-split parts inside a device: on-device labelled data, then test data
SPLITS = ("pretrain", "federated", "heldout")


class DataError(ValueError):
    """A data set that cannot be used; the message names the problem and the row or user."""


@dataclass
class TaskData:
    """Windows of one task with their labels and provenance (one row per window)."""

    task: str
    labels: list[str]
    x: np.ndarray  # float32 (N, *input_shape)
    y: np.ndarray  # int64 (N,)
    device: np.ndarray  # int64 (N,), index into device_names
    part: np.ndarray  # uint8 (N,), OWN or TEST
    device_names: list[str]
    device_users: list[str]  # the user owning each device

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def users(self) -> list[str]:
        return sorted(set(self.device_users))

    def rows_of_devices(self, devices: list[int]) -> np.ndarray:
        return np.isin(self.device, np.asarray(devices, dtype=np.int64))


def split_users(
    users: list[str], fractions: tuple[float, float], seed: int
) -> dict[str, list[str]]:
    """Assign users to pretrain / federated / held-out, seeded; every group gets at least one."""
    if len(users) < 3:
        raise DataError(f"need at least 3 users to split into {SPLITS}, got {len(users)}")
    order = [users[i] for i in np.random.default_rng(seed).permutation(len(users))]
    n_pre = max(1, round(fractions[0] * len(users)))
    n_fed = max(1, round(fractions[1] * len(users)))
    n_pre = min(n_pre, len(users) - 2)
    n_fed = min(n_fed, len(users) - n_pre - 1)
    groups = {
        "pretrain": order[:n_pre],
        "federated": order[n_pre : n_pre + n_fed],
        "heldout": order[n_pre + n_fed :],
    }
    return {name: sorted(members) for name, members in groups.items()}


def devices_of(data: TaskData, users: list[str]) -> list[int]:
    wanted = set(users)
    return [i for i, user in enumerate(data.device_users) if user in wanted]


def time_split_parts(n_windows: int, own_fraction: float, gap: int) -> np.ndarray:
    """OWN for the earlier windows, TEST for the later ones, dropping `gap` windows between.

    Windows of one stream overlap their neighbours (hop < window), so the `gap` windows
    between the parts are marked -1 and removed: no sample is in both an own and a test window.
    """
    parts = np.full(n_windows, TEST, dtype=np.int8)
    n_own = int(np.floor(own_fraction * n_windows))
    parts[:n_own] = OWN
    parts[n_own : n_own + gap] = -1
    return parts


def sliding_windows(stream: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(T, C) samples -> (n, length, C) windows starting every `hop` samples."""
    starts = range(0, stream.shape[0] - length + 1, hop)
    return np.stack([stream[s : s + length] for s in starts]) if len(starts) else np.empty(
        (0, length, stream.shape[1]), dtype=stream.dtype
    )


def load_task(task: str, **options: object) -> TaskData:
    """Load a task by name ('watch', 'kws') or a user data file path (.npz / .csv)."""
    if task == "watch":
        from model_gen.datasets.watch import load_watch

        return load_watch()
    if task == "kws":
        from model_gen.datasets.kws import load_kws

        return load_kws(**options)  # type: ignore[arg-type]
    from model_gen.datasets.userdata import load_user_file

    return load_user_file(task)
