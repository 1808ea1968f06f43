"""`invoke bench` end to end: every section is measured and the report matches its schema."""

from __future__ import annotations

import json

from tools.bench.run import OUT, run
from tools.bench.schema import validate


def test_bench_writes_a_complete_report() -> None:
    report = run("watch")
    assert validate(report) == []
    on_disk = json.loads((OUT / "bench.json").read_text())
    assert validate(on_disk) == []
    assert on_disk["backbone"]["host_speedup"] == on_disk["backbone"]["host_us_tflm"] / \
        on_disk["backbone"]["host_us_ref"]
    assert (OUT / "bench.md").read_text().startswith("# fedhead benchmarks")
