"""Helpers of the Flower tests (tests/unit/flower): a run in a background thread, and waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path


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


def wait_for_run(work: Path, timeout: float = 120) -> None:
    """Until the SuperLink started in `work` (engine work_dir) accepted the run."""
    log = work / "logs" / "superlink.log"
    wait_until(
        lambda: "StartRun" in (log.read_text() if log.exists() else ""),
        timeout,
        "the SuperLink to accept the run",
    )
