"""User data files (.npz / .csv): the format loads, and every bad file names its problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_gen.datasets import OWN, TEST, DataError
from model_gen.datasets.userdata import load_user_file


def _good_arrays(users: int = 3, classes: int = 2, per_class: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    rows = users * classes * per_class
    return {
        "x": rng.normal(size=(rows, 8, 2)).astype(np.float32),
        "y": np.tile(np.repeat(np.arange(classes), per_class), users).astype(np.int64),
        "user": np.repeat([f"u{i}" for i in range(users)], classes * per_class).astype("<U8"),
    }


def _write_npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    return path


def test_npz_loads_with_time_split_per_user_and_class(tmp_path: Path) -> None:
    data = load_user_file(_write_npz(tmp_path, **_good_arrays()))
    assert data.task == "mine"
    assert data.input_shape == (1, 8, 2)
    assert data.labels == ["class0", "class1"]
    assert data.device_names == ["u0", "u1", "u2"]
    # 6 rows per class: 3 own, 1 dropped as the gap, 2 test.
    for device in range(3):
        for cls in range(2):
            rows = (data.device == device) & (data.y == cls)
            assert np.sum(rows & (data.part == OWN)) == 3
            assert np.sum(rows & (data.part == TEST)) == 2


def test_csv_loads_same_windows_as_npz(tmp_path: Path) -> None:
    arrays = _good_arrays()
    header = ["user", "y"] + [f"x_{t}_{c}" for t in range(8) for c in range(2)]
    lines = [",".join(header)]
    for x, y, user in zip(arrays["x"], arrays["y"], arrays["user"], strict=True):
        lines.append(",".join([str(user), str(int(y))] + [repr(float(v)) for v in x.reshape(-1)]))
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(lines) + "\n")
    from_csv = load_user_file(path)
    from_npz = load_user_file(_write_npz(tmp_path, **arrays))
    np.testing.assert_array_equal(from_csv.x, from_npz.x)
    np.testing.assert_array_equal(from_csv.y, from_npz.y)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(x=a["x"][:, :, :, None, None]), r"x has shape"),
        (lambda a: a.update(x=a["x"].astype(str)), r"x has dtype"),
        (lambda a: a.update(y=a["y"].astype(np.float32)), r"y has shape .* dtype float32"),
        (lambda a: a.update(y=a["y"][:-1]), r"row counts differ"),
        (lambda a: a["x"].__setitem__((13, 2, 1), np.nan), r"NaN/Inf in row 13 \(user 'u1'\)"),
        (lambda a: a["x"].__setitem__((30, 0, 0), np.inf), r"NaN/Inf in row 30 \(user 'u2'\)"),
        (lambda a: a.update(y=np.zeros_like(a["y"])), r"only one class"),
        (lambda a: a["y"].__setitem__(7, 5), r"classes \[2, 3, 4\] have no rows"),
        (lambda a: a["y"].__setitem__(4, -1), r"label -1 out of range"),
        (lambda a: a["user"].__setitem__(0, "loner"), r"user 'loner' has no data in its own"),
        (lambda a: a.pop("user"), r"missing arrays \['user'\]"),
    ],
)
def test_bad_npz_names_the_problem(tmp_path: Path, change: object, message: str) -> None:
    arrays = _good_arrays()
    change(arrays)
    with pytest.raises(DataError, match=message):
        load_user_file(_write_npz(tmp_path, **arrays))


def test_labels_array_bounds_the_classes(tmp_path: Path) -> None:
    arrays = _good_arrays()
    arrays["labels"] = np.asarray(["only"])
    with pytest.raises(DataError, match=r"label 1 out of range \[0, 1\) in row 6"):
        load_user_file(_write_npz(tmp_path, **arrays))


def test_bad_csv_cell_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user,y,x_0,x_1\nu0,0,1.0,2.0\nu0,1,oops,2.0\n")
    with pytest.raises(DataError, match=r"row 3: not a number"):
        load_user_file(path)


def test_unknown_file_type_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported data file type"):
        load_user_file(tmp_path / "data.txt")
    with pytest.raises(DataError, match="no such data file"):
        load_user_file(tmp_path / "absent.npz")
