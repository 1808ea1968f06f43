"""kill -9 of a real aggregator process mid-round, restart: resumes after the last committed
round, earlier rounds unchanged, integrity check clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.unit.link.peer import PyPeer
from tools.aggregator.store import Store
from tools.link import messages as m

ROOT = Path(__file__).resolve().parents[3]


def _launch(peers: list[PyPeer], tmp_path: Path, rounds: int, *options: str) -> subprocess.Popen:
    """`python -m tools.aggregator` over the peers' ptys, store and report in tmp_path."""
    args = [
        sys.executable,
        "-m",
        "tools.aggregator",
        "--rounds",
        str(rounds),
        "--no-progress",
        "--head-npz",
        str(tmp_path / "head.npz"),
        "--task",
        "no-such-task",
        "--store",
        str(tmp_path / "agg.sqlite"),
        "--report-dir",
        str(tmp_path / "report"),
        "--deadline",
        "10",
        *options,
    ]
    for peer in peers:
        args += ["--port", peer.path]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _committed(path: Path) -> int:
    store = Store(path)
    try:
        return store.last_round()
    finally:
        store.close()


def test_kill_9_mid_round_then_resume(tmp_path: Path, peers: list[PyPeer]) -> None:
    np.savez(tmp_path / "head.npz", w=np.zeros((4, 3), np.float32), b=np.zeros(3, np.float32))
    for peer in peers:
        peer.train_delay_s = 0.4  # each round lasts ≥ 0.4 s: room to kill inside one
    process = _launch(peers, tmp_path, rounds=20)
    try:
        deadline = time.monotonic() + 60
        while _committed(tmp_path / "agg.sqlite") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # now inside round 3 (TRAIN sent, waiting for the update)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    store = Store(tmp_path / "agg.sqlite")
    before = store.rounds()
    assert len(before) >= 2 and store.integrity_check() == []
    store.close()
    trained = {
        m.Train.unpack(f.payload).round
        for p in peers
        for f in p.received
        if f.type == m.MsgType.TRAIN
    }
    assert len(before) + 1 in trained  # the kill landed inside an uncommitted round

    for peer in peers:
        peer.train_delay_s = 0.0
    target = len(before) + 2
    process = _launch(peers, tmp_path, rounds=target)
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output.decode()
    assert f"resuming after committed round {len(before)}" in output.decode()
    store = Store(tmp_path / "agg.sqlite")
    try:
        after = store.rounds()
        assert [r["round"] for r in after] == list(range(1, target + 1))
        assert after[: len(before)] == before  # committed rounds never rewritten
        assert store.integrity_check() == []
        assert all(len(store.updates(r, accepted_only=True)) == 3 for r in range(1, target + 1))
    finally:
        store.close()
    assert (tmp_path / "report" / "aggregate.json").exists()
    assert (tmp_path / "report" / "aggregate_epsilon.png").stat().st_size > 1000
