"""Helpers of the Flower tests (tests/unit/flower): a loopback deployment (TLS, node
authentication, gateways), a run in a background thread, waits, samples for replay boards."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.aggregator.config import AggregatorConfig
from tools.fleet.launch import VirtualDevice
from tools.flower.engine import SuperLinkSpec, run_flower_aggregate
from tools.flower.gateway import board_name, free_port
from tools.flower.processes import FlowerProcess, Tls, spawn
from tools.flower.tls import ensure_keys, supernode_keypair
from tools.link.client import DeviceClient


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def run_in_background(call: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Start `call` (e.g. run_flower_aggregate) in a thread: outcome["report"] is its result,
    outcome["error"] what it raised (re-raise it in the test's thread)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def finished(outcome: dict[str, object]) -> None:
    """Re-raise what the background run raised; fail if it did not end (run_in_background)."""
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    assert "report" in outcome, "the Flower run did not finish"


def wait_for_run(work: Path, timeout: float = 120) -> None:
    """Until the SuperLink started in `work` (engine work_dir) accepted the run."""
    log = work / "logs" / "superlink.log"
    wait_until(
        lambda: "StartRun" in (log.read_text() if log.exists() else ""),
        timeout,
        "the SuperLink to accept the run",
    )


def load_samples(devices: list[VirtualDevice], model: Path, per_device: int = 12) -> None:
    """Labelled windows of the model's device data on replay boards (board i: data device i)."""
    data = np.load(model / "devices.npz")
    for index, device in enumerate(devices):
        with DeviceClient.open(device.url) as client:
            rows = np.flatnonzero(data["device"] == index % len(data["device_name"]))
            for row in rows[:per_device]:
                client.sample(data["x"][row].ravel(), int(data["y"][row]))


@dataclass
class Loopback:
    """A Flower deployment on loopback as the tests run it: a SuperLink with TLS (a CA made in
    `tmp`) and SuperNode authentication for the boards at `urls`, started by the engine."""

    tmp: Path
    urls: list[str]
    work: Path = field(init=False)
    spec: SuperLinkSpec = field(init=False)
    ca: Path = field(init=False)

    def __post_init__(self) -> None:
        keys = ensure_keys(self.tmp / "keys", ["127.0.0.1", "localhost"])
        public = tuple(
            supernode_keypair(self.tmp / "node-keys", board_name(url))[1] for url in self.urls
        )
        self.ca, self.work = keys.ca_cert, self.tmp / "flower"
        self.spec = SuperLinkSpec(
            f"127.0.0.1:{free_port()}",
            tls=Tls(keys.ca_cert, keys.server_cert, keys.server_key),
            node_auth=True,
            public_keys=public,
        )

    def aggregate(
        self, config: AggregatorConfig, boards: int, store: Path, head_npz: Path, slack_s: float
    ) -> tuple[threading.Thread, dict[str, object]]:
        """`invoke aggregate --engine flower` in a background thread (run_in_background)."""
        return run_in_background(
            lambda: run_flower_aggregate(
                config,
                boards,
                store,
                head_npz,
                None,
                self.tmp / "report",
                self.spec,
                work_dir=self.work,
                join_timeout_s=120,
                reply_slack_s=slack_s,
            )
        )

    def gateway(self, name: str, url: str, tap: Path | None = None) -> FlowerProcess:
        """`invoke gateway` for one board (stop it by PID: FlowerProcess.stop / kill)."""
        cmd = [sys.executable, "-m", "tools.flower.gateway", "--port", url]
        cmd += ["--superlink", self.spec.address, "--root-certificates", str(self.ca)]
        cmd += ["--auth-keys", str(self.tmp / "node-keys"), "--work-dir", str(self.work / name)]
        cmd += ["--tap", str(tap)] if tap is not None else []
        return spawn(name, cmd, self.work / "gateway-home", self.work / "logs")

    def gateways(
        self, devices: list[VirtualDevice], tap: Path | None = None
    ) -> dict[int, FlowerProcess]:
        """One gateway per board, named gateway-<device id>; device id → its process."""
        return {d.device_id: self.gateway(f"gateway-{d.device_id}", d.url, tap) for d in devices}
