"""Dataset plumbing: the time split never lets a sample sit in both own and test windows."""

from __future__ import annotations

import numpy as np
import pytest

from model_gen.datasets import (
    OWN,
    SPLITS,
    TEST,
    sliding_windows,
    split_users,
    time_split_parts,
    watch,
)


@pytest.mark.parametrize("length", [100, 101, 149, 150, 1333, 2458])
def test_watch_time_split_leaves_no_shared_sample(length: int) -> None:
    # Window a stream of sample indices, so each window says which samples it holds.
    stream = np.arange(length, dtype=np.float32)[:, None]
    windows = sliding_windows(stream, watch.WINDOW, watch.HOP)
    parts = time_split_parts(len(windows), watch.OWN_FRACTION, watch.GAP_WINDOWS)
    own = set(windows[parts == OWN].reshape(-1).tolist())
    test = set(windows[parts == TEST].reshape(-1).tolist())
    assert not own & test
    if own and test:
        assert max(own) < min(test)


def test_split_users_is_seeded_disjoint_and_complete() -> None:
    users = [f"s{i:02d}" for i in range(1, 11)]
    first = split_users(users, (0.5, 0.3), seed=0)
    assert first == split_users(users, (0.5, 0.3), seed=0)
    assert first != split_users(users, (0.5, 0.3), seed=1)
    assert [len(first[s]) for s in SPLITS] == [5, 3, 2]
    assert sorted(u for group in first.values() for u in group) == users


def test_watch_devices_have_enough_own_windows_for_k10() -> None:
    data = watch.load_watch()
    assert data.input_shape == (1, 100, 6)
    assert len(data.device_names) == 20 and len(data.users()) == 10
    assert data.num_classes == 7
    for device in range(len(data.device_names)):
        own = (data.device == device) & (data.part == OWN)
        counts = np.bincount(data.y[own], minlength=7)
        assert counts.min() >= 10, (data.device_names[device], counts)
        assert np.any((data.device == device) & (data.part == TEST))


def test_kws_speakers_are_deterministic_and_cached(build_root: object) -> None:
    from model_gen.datasets import kws

    first = kws.load_kws(speakers=3, seed=5)
    cached = list((build_root / "data").glob("kws-3spk-*.npz"))  # type: ignore[operator]
    assert len(cached) == 1
    cached[0].unlink()  # regenerate from scratch: same seed, same features
    again = kws.load_kws(speakers=3, seed=5)
    np.testing.assert_array_equal(first.x, again.x)
    assert first.input_shape == (49, 40, 1) and first.labels == list(kws.KEYWORDS)
    per_class = len(kws.KEYWORDS)
    assert len(first.y) == 3 * per_class * kws.UTTERANCES
    for device in range(3):
        own = (first.device == device) & (first.part == OWN)
        assert np.bincount(first.y[own], minlength=per_class).min() == kws.OWN_UTTERANCES
    assert not np.array_equal(first.x, kws.load_kws(speakers=3, seed=6).x)
