"""Bring your own data: `.npz` or `.csv` files with windows `x`, labels `y` and `user` ids.

The format is documented in docs/DATA.md. Rows of one user are in time order; inside each
user and class, the earlier rows become the user's own (on-device) data and the later ones
its test data, with one row dropped between so overlapping windows cannot leak.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from model_gen.datasets import OWN, TEST, DataError, TaskData

OWN_FRACTION = 0.5
GAP_ROWS = 1
_CSV_X = re.compile(r"^x_(\d+)(?:_(\d+))?$")


def load_user_file(path: str | Path) -> TaskData:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file (tasks are 'watch', 'kws' or a .npz/.csv)")
    if path.suffix == ".npz":
        x, y, user, labels = _read_npz(path)
    elif path.suffix == ".csv":
        x, y, user, labels = _read_csv(path)
    else:
        raise DataError(f"{path}: unsupported data file type {path.suffix!r} (use .npz or .csv)")
    return build_task_data(path.stem, x, y, user, labels)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None]:
    with np.load(path, allow_pickle=False) as archive:
        missing = [key for key in ("x", "y", "user") if key not in archive]
        if missing:
            raise DataError(f"{path}: missing arrays {missing} (need x, y, user)")
        labels = [str(s) for s in archive["labels"]] if "labels" in archive else None
        return archive["x"], archive["y"], archive["user"], labels


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or "y" not in header or "user" not in header:
            raise DataError(f"{path}: header must name columns 'user', 'y' and x_<t>[_<c>]")
        x_cols = [(i, _CSV_X.match(name)) for i, name in enumerate(header)]
        x_cols = [(i, m) for i, m in x_cols if m]
        if not x_cols:
            raise DataError(f"{path}: no x_<t> or x_<t>_<c> columns in the header")
        steps = 1 + max(int(m.group(1)) for _, m in x_cols)
        channels = 1 + max(int(m.group(2) or 0) for _, m in x_cols)
        if steps * channels != len(x_cols):
            raise DataError(f"{path}: x columns do not form a full {steps}x{channels} grid")
        rows = list(reader)
    y_col, user_col = header.index("y"), header.index("user")
    x = np.empty((len(rows), steps, channels), dtype=np.float32)
    y = np.empty(len(rows), dtype=np.int64)
    for r, row in enumerate(rows, start=2):  # row numbers as a spreadsheet shows them
        try:
            for i, m in x_cols:
                x[r - 2, int(m.group(1)), int(m.group(2) or 0)] = float(row[i])
            y[r - 2] = int(row[y_col])
        except (ValueError, IndexError) as err:
            raise DataError(f"{path}: row {r}: not a number or missing column ({err})") from None
    user = np.asarray([row[user_col] for row in rows])
    return x, y, user, None


def build_task_data(
    name: str, x: np.ndarray, y: np.ndarray, user: np.ndarray, labels: list[str] | None
) -> TaskData:
    """Validate raw arrays and turn them into a TaskData (windows shaped (1, T, C))."""
    x, y, user = _check_arrays(x, y, user)
    labels = _check_labels(y, labels)
    users = sorted(set(user.tolist()))
    device = np.asarray([users.index(u) for u in user.tolist()], dtype=np.int64)
    part = np.full(len(y), TEST, dtype=np.int8)
    for d, name_of_user in enumerate(users):
        for cls in np.unique(y[device == d]):
            rows = np.flatnonzero((device == d) & (y == cls))
            n_own = int(np.floor(OWN_FRACTION * len(rows)))
            part[rows[:n_own]] = OWN
            part[rows[n_own : n_own + GAP_ROWS]] = -1
        for wanted, what in ((OWN, "own (earlier)"), (TEST, "test (later)")):
            if not np.any((device == d) & (part == wanted)):
                raise DataError(f"user {name_of_user!r} has no data in its {what} part "
                                "(needs at least 3 rows of some class)")
    keep = part >= 0
    return TaskData(
        task=name,
        labels=labels,
        x=x[keep][:, None, :, :],
        y=y[keep],
        device=device[keep],
        part=part[keep].astype(np.uint8),
        device_names=users,
        device_users=users,
    )


def _check_arrays(
    x: np.ndarray, y: np.ndarray, user: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if x.dtype.kind not in "fiu":
        raise DataError(f"x has dtype {x.dtype}; need numbers (float or int)")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise DataError(f"x has shape {x.shape}; need (N, T) or (N, T, C) windows")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"y has shape {y.shape} dtype {y.dtype}; need (N,) integer labels")
    if user.ndim != 1 or user.dtype.kind not in "iuUS":
        raise DataError(f"user has shape {user.shape} dtype {user.dtype}; need (N,) ids")
    if not len(x) == len(y) == len(user):
        raise DataError(f"row counts differ: x {len(x)}, y {len(y)}, user {len(user)}")
    if len(x) == 0:
        raise DataError("no rows")
    user = user.astype(str)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"x has NaN/Inf in row {row} (user {str(user[row])!r}); "
                        f"{int(bad.sum())} rows affected")
    empty = [i for i, u in enumerate(user.tolist()) if not u.strip()]
    if empty:
        raise DataError(f"user id is empty in row {empty[0]}")
    return x.astype(np.float32), y.astype(np.int64), user


def _check_labels(y: np.ndarray, labels: list[str] | None) -> list[str]:
    num_classes = len(labels) if labels is not None else int(y.max()) + 1
    out = np.flatnonzero((y < 0) | (y >= num_classes))
    if out.size:
        row = int(out[0])
        raise DataError(f"label {int(y[row])} out of range [0, {num_classes}) in row {row}")
    present = np.unique(y)
    if present.size < 2:
        raise DataError(f"only one class ({int(present[0])}) in the data; need at least 2")
    absent = sorted(set(range(num_classes)) - set(present.tolist()))
    if absent and labels is None:
        raise DataError(f"classes {absent} have no rows: without a `labels` array, y must use "
                        f"every class 0..{num_classes - 1} (max label {num_classes - 1})")
    return labels if labels is not None else [f"class{i}" for i in range(num_classes)]
