"""`invoke bench` end to end: every section is measured and the report matches its schema."""

from __future__ import annotations

import json

from tools.bench.run import OUT, firmware_task, run
from tools.bench.schema import validate


def test_bench_writes_a_complete_report() -> None:
    report = run("watch")
    assert validate(report) == []
    on_disk = json.loads((OUT / "bench.json").read_text())
    assert validate(on_disk) == []
    assert on_disk["backbone"]["host_speedup"] == on_disk["backbone"]["host_us_tflm"] / \
        on_disk["backbone"]["host_us_ref"]
    assert (OUT / "bench.md").read_text().startswith("# fedhead benchmarks")


def test_sections_that_run_the_boards_are_skipped_for_another_task() -> None:
    """The virtual boards embed watch's backbone (platformio.ini): `invoke bench --task kws`
    says so and skips the sections that run them instead of failing on kws's windows."""
    assert firmware_task() == "watch"
    report = run("kws", only=("link", "secagg"))
    assert set(report["skipped"]) == {"link", "secagg"}
    assert "link" not in report and "secagg" not in report
    assert "--task watch" in report["skipped"]["link"]
