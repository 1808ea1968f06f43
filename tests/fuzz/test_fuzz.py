"""A bounded libFuzzer pass over every target under ASan/UBSan: the repo corpus (seeds and
reproducers of fixed crashes) first, then 20 s of fuzzing per target (60 s in all). Any crash,
sanitizer finding or invariant violation (tests/fuzz/harness) fails the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.fuzz.build import CORPUS, TARGETS, replay, run

SECONDS_PER_TARGET = 20


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_cleanly(target: str) -> None:
    inputs = sorted((CORPUS / target).iterdir())
    assert len(inputs) >= 10, f"seed corpus of {target} is missing: python -m tools.fuzz.seeds"
    replay(target, inputs)


@pytest.mark.parametrize("target", TARGETS)
def test_bounded_fuzz_pass_finds_nothing(target: str, tmp_path: Path) -> None:
    result = run(target, SECONDS_PER_TARGET, jobs_dir=tmp_path)
    assert result.ok, f"{target}: crash inputs {result.crashes}\n{result.log_tail}"
    assert result.executions > 100, f"{target} barely ran:\n{result.log_tail}"
