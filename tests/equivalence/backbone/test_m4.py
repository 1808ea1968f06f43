"""The generated backbone built for Cortex-M4 (hard float) gives the host build's outputs.

Runs under unicorn through tools/bench/m4.py, on a fixed window set, comparing int8 and float
embeddings with the ASan/UBSan host driver and with TFLM; also checks the harness's
instruction counts are repeatable and that a faulting callee is reported, not hidden.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model_gen.refgen import KERNELS_DIR
from tests.equivalence.backbone.support import (
    INCLUDES,
    build_ref_driver,
    convert_int8,
    random_windows,
    ref_outputs,
    tflm_outputs,
)
from tests.equivalence.backbone.test_models import mixed_backbone
from tools.bench.m4 import M4Error, M4Machine, build_m4_elf

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc"
)
WINDOWS = 24


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    work = tmp_path_factory.mktemp("m4")
    rng = np.random.default_rng(5)
    tflite = convert_int8(mixed_backbone(), rng.normal(size=(32, 1, 64, 6)).astype(np.float32))
    build_ref_driver(tflite, work, name="m4_host_twin")  # also writes backbone_ref_model.c
    return tflite, work


def m4_machine(work: Path) -> M4Machine:
    elf = build_m4_elf(
        [work / "backbone_ref_model.c", KERNELS_DIR / "src" / "kernels.c"],
        out=work / "backbone_m4.elf",
        include_dirs=INCLUDES,
        keep=["backbone_embed_int8", "backbone_embed", "backbone_init"],
    )
    return M4Machine(elf)


def test_cortex_m4_build_matches_host_and_tflm(mixed_model: tuple[bytes, Path]) -> None:
    tflite, work = mixed_model
    windows = random_windows(np.random.default_rng(9), WINDOWS, 64 * 6)
    want = tflm_outputs(tflite, windows)
    dim = want.shape[1]
    host_q, host_f = ref_outputs(build_ref_driver(tflite, work, "m4_host_twin"), windows, dim)
    machine = m4_machine(work)
    assert machine.call("backbone_init").return_value == 0
    src, dst_q, dst_f = machine.alloc(windows.shape[1]), machine.alloc(dim), machine.alloc(4 * dim)
    m4_q, m4_f = [], []
    for window in windows:
        machine.write(src, window.tobytes())
        assert machine.call("backbone_embed_int8", src, dst_q).return_value == 0
        assert machine.call("backbone_embed", src, dst_f).return_value == 0
        m4_q.append(np.frombuffer(machine.read(dst_q, dim), np.int8))
        m4_f.append(np.frombuffer(machine.read(dst_f, 4 * dim), "<f4"))
    np.testing.assert_array_equal(np.stack(m4_q), host_q)
    np.testing.assert_array_equal(np.stack(m4_q), want)
    np.testing.assert_array_equal(np.stack(m4_f), host_f)


def test_instruction_counts_are_repeatable(mixed_model: tuple[bytes, Path]) -> None:
    _, work = mixed_model
    machine = m4_machine(work)
    src, dst = machine.alloc(64 * 6), machine.alloc(64)
    first = machine.call("backbone_embed_int8", src, dst).instructions
    again = machine.call("backbone_embed_int8", src, dst).instructions
    assert first == again and first > 10_000
    assert machine.call("backbone_embed_int8", 0, dst).instructions < 50  # NULL: early return


def test_fault_in_callee_is_reported(mixed_model: tuple[bytes, Path]) -> None:
    _, work = mixed_model
    machine = m4_machine(work)
    with pytest.raises(M4Error, match="faulted"):
        machine.call("backbone_embed_int8", 0x5000_0000, machine.alloc(64))  # unmapped input
    with pytest.raises(M4Error, match="not in the ELF"):
        machine.call("no_such_function")
