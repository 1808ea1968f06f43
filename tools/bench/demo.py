"""Wall time of the demo by phase: a short demo (2 rounds, host boards, all devices) whose
report goes to build/bench/demo/ so the user's build/report/demo.json is left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def measure(task: str = "watch") -> dict[str, Any]:
    from tools.demo.run import DemoConfig, run_demo

    config = DemoConfig(task=task, board="host", rounds=2)
    report = run_demo(config, report_dir=ROOT / "build" / "bench" / "demo")
    return {"phases_s": report["phases_s"], "wall_s": report["wall_s"],
            "devices": report["devices"], "rounds": config.rounds, "board": config.board}
