"""A bounded libFuzzer pass over every target under ASan/UBSan: the repo corpus (seeds and
reproducers of fixed crashes) first, then 20 s of fuzzing per target (60 s in all). Any crash,
sanitizer finding or invariant violation (tests/fuzz/harness) fails the test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cbuild import SANITIZER_ENV, build_c_program
from tools.fuzz.build import CORPUS, FEDCORE, HARNESS, TARGETS, replay, run
from tools.link import frame as fr
from tools.link import messages as m

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


def _check_output(wire: bytes, device_id: int = 0x42) -> subprocess.CompletedProcess[bytes]:
    exe = build_c_program(
        "wire-check",
        [
            HARNESS / "wire_check_driver.c",
            HARNESS / "wire_check.c",
            *(FEDCORE / "src" / n for n in ("link.c", "cobs.c", "crc32.c")),
        ],
        [FEDCORE / "include", HARNESS],
    )
    return subprocess.run(
        [str(exe), str(device_id)],
        input=wire,
        capture_output=True,
        env={**os.environ, **SANITIZER_ENV},
        timeout=60,
    )


def test_output_invariant_accepts_device_frames_and_rejects_broken_ones() -> None:
    def frame(msg: m.Message, **kw: int) -> bytes:
        return fr.encode_frame(fr.Frame(msg.TYPE, msg.pack(), 0x42, 5, fr.FLAG_REPLY, **kw))

    good = frame(m.Ack(5, m.MsgType.HELLO)) + frame(m.Nack(6, m.MsgType.TRAIN, 12))
    ok = _check_output(b"\x00" + good)
    assert ok.returncode == 0 and ok.stdout.strip() == b"2", ok.stderr
    broken = {
        "does not decode": good[:-3] + b"\x00",
        "another device_id": fr.encode_frame(fr.Frame(m.MsgType.ACK, bytes(8), 0x43, 5)),
        "reserved header bits": fr.encode_frame(
            fr.Frame(m.MsgType.ACK, bytes(8), 0x42, 5, fr.FLAG_AUTH, auth=bytes(24))
        ),
        "ACK/NACK length": fr.encode_frame(fr.Frame(m.MsgType.ACK, bytes(9), 0x42, 5)),
        "not device->host": frame(m.Hello()),
        "NACK without a code": frame(m.Nack(6, m.MsgType.TRAIN, 0)),
        "ends inside a frame": good[:-1],
    }
    for what, wire in broken.items():
        result = _check_output(wire)
        assert result.returncode != 0, what
        assert what.encode() in result.stderr, (what, result.stderr[-500:])
