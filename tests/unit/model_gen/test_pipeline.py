"""End to end on a tiny model: train -> int8 -> TFLM -> emit, and the emitted C is exact.

C drivers are compiled with tests/support/cbuild.py against the generated sources and their
output is compared with the artifacts the pipeline wrote.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_gen import emit as emit_module
from model_gen import paths
from model_gen.datasets import OWN, TEST
from model_gen.tflite_info import SUPPORTED_OPS, read_tflite
from tests.support.cbuild import build_c_program, run_c_program
from tests.unit.model_gen.conftest import TinyBuild

C_DIR = Path(__file__).parent / "c"
CARD_FIELDS = ("float_acc", "int8_tflite_acc", "int8_tflm_acc", "backbone_bytes", "arena_bytes",
               "ops", "embedding_dim", "num_classes", "tflite_sha256", "users", "labels",
               "input_shape", "input_quantization")


def _tflite(build: TinyBuild) -> bytes:
    return (build.model_dir / paths.TFLITE_NAME).read_bytes()


def _run_driver(build: TinyBuild, name: str, sources: list[str]) -> bytes:
    exe = build_c_program(
        f"model_gen_{name}",
        [C_DIR / f"{name}.c", *(build.generated_dir / s for s in sources)],
        include_dirs=[build.generated_dir],
    )
    return run_c_program(exe)


def test_model_card_is_complete_and_consistent(tiny_build: TinyBuild) -> None:
    card = json.loads((tiny_build.model_dir / paths.CARD_NAME).read_text())
    assert all(field in card for field in CARD_FIELDS)
    model = _tflite(tiny_build)
    info = read_tflite(model)
    assert card["tflite_sha256"] == hashlib.sha256(model).hexdigest()
    assert card["backbone_bytes"] == len(model)
    assert card["ops"] == info.ops and set(info.ops) <= set(SUPPORTED_OPS)
    assert card["embedding_dim"] == info.output.shape[-1] and 32 <= card["embedding_dim"] <= 64
    assert card["num_classes"] == 3 and card["labels"] == ["slow", "medium", "fast"]
    assert 0 < card["arena_bytes"] <= 32 * 1024
    assert sorted(u for group in card["users"].values() for u in group) == [
        f"user{i}" for i in range(6)]
    # The synthetic classes are easy: a working pipeline separates them in int8 too.
    assert card["int8_tflm_acc"] >= 0.9, card


def test_emitted_array_bytes_equal_tflite(tiny_build: TinyBuild) -> None:
    assert _run_driver(tiny_build, "dump_model", ["model_data.c"]) == _tflite(tiny_build)


def test_head_init_round_trips_bit_exactly(tiny_build: TinyBuild) -> None:
    with np.load(tiny_build.model_dir / paths.HEAD_NAME) as head:
        expected = np.concatenate([head["w"].reshape(-1), head["b"]]).view(np.uint32)
    printed = _run_driver(tiny_build, "dump_head", ["head_init.c"]).decode().split()
    assert [int(word, 16) for word in printed] == expected.tolist()


def test_model_config_matches_tflite_and_card(tiny_build: TinyBuild) -> None:
    out = _run_driver(tiny_build, "dump_config", []).decode()
    config = dict(line.split("=", 1) for line in out.splitlines())
    model = _tflite(tiny_build)
    info = read_tflite(model)
    assert config["api"] == str(emit_module.GENERATED_API)
    assert config["task"] == tiny_build.task
    assert config["shape"] == ",".join(map(str, info.input.shape[1:]))
    assert int(config["input_len"]) == int(np.prod(info.input.shape[1:]))
    assert int(config["embed_dim"]) == info.output.shape[-1]
    assert int(config["num_classes"]) == 3
    f32_bits = lambda v: f"{int(np.float32(v).view(np.uint32)):08x}"  # noqa: E731
    assert config["input_scale_bits"] == f32_bits(info.input.scale)
    assert int(config["input_zero_point"]) == info.input.zero_point
    assert config["embed_scale_bits"] == f32_bits(info.output.scale)
    assert int(config["embed_zero_point"]) == info.output.zero_point
    sha = hashlib.sha256(model).hexdigest()
    assert config["sha_hex"] == sha and config["sha_bytes"] == sha
    assert int(config["arena"]) >= tiny_build.card["arena_bytes"] and int(config["arena"]) % 16 == 0
    assert config["labels"] == "slow|medium|fast"


def test_api_guard_stops_compilation_on_mismatch(tiny_build: TinyBuild) -> None:
    api = emit_module.GENERATED_API
    _run_driver(tiny_build, "dump_config", [])  # builds without an expectation
    exe = build_c_program("model_gen_guard_ok", [C_DIR / "dump_config.c"],
                          include_dirs=[tiny_build.generated_dir],
                          defines=[f"FEDCORE_GENERATED_API_EXPECTED={api}"])
    assert run_c_program(exe)
    with pytest.raises(RuntimeError, match="generated model code API differs"):
        build_c_program("model_gen_guard_bad", [C_DIR / "dump_config.c"],
                        include_dirs=[tiny_build.generated_dir],
                        defines=[f"FEDCORE_GENERATED_API_EXPECTED={api + 1}"])


def test_resolver_registers_exactly_the_flatbuffer_ops(tiny_build: TinyBuild) -> None:
    import tensorflow as tf

    text = (tiny_build.generated_dir / "op_resolver.h").read_text()
    methods = re.findall(r"resolver\.(Add\w+)\(\) != kTfLiteOk", text)
    by_method = {method: op for op, method in SUPPORTED_OPS.items()}
    registered = {by_method[m] for m in methods}
    assert len(methods) == len(registered)  # each op once
    assert f"kNumOps = {len(methods)};" in text
    # Independent reading of the flatbuffer: TensorFlow Lite's own op listing.
    interpreter = tf.lite.Interpreter(model_content=_tflite(tiny_build))
    tf_ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert registered == tf_ops


def test_every_generated_file_starts_with_the_generated_line(tiny_build: TinyBuild) -> None:
    stamp = (tiny_build.generated_dir / emit_module.STAMP_NAME).read_text().strip()
    files = [tiny_build.generated_dir / n for n in emit_module.OWN_TEMPLATES]
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first == emit_module.header_line(stamp), path.name
        assert "do not edit" in first


def _copy_task(build: TinyBuild, name: str) -> str:
    shutil.copytree(build.model_dir, build.root / "model" / name, dirs_exist_ok=True)
    return name


def test_emit_skips_when_unchanged_and_reruns_when_an_input_changes(tiny_build: TinyBuild) -> None:
    task = _copy_task(tiny_build, "tinystamp")
    assert emit_module.emit(task) is True
    out = paths.generated_dir(task)
    first_hash = (out / emit_module.STAMP_NAME).read_text()
    mtime = (out / "head_init.c").stat().st_mtime_ns
    assert emit_module.emit(task) is False
    assert (out / "head_init.c").stat().st_mtime_ns == mtime
    head_path = paths.model_dir(task) / paths.HEAD_NAME
    with np.load(head_path) as head:
        w, b = head["w"].copy(), head["b"].copy()
    w[0, 0] = np.float32(0.1)
    np.savez(head_path, w=w, b=b)
    assert emit_module.needs_emit(task)
    assert emit_module.emit(task) is True
    assert (out / emit_module.STAMP_NAME).read_text() != first_hash
    assert "0x1.99999ap-4f" in (out / "head_init.c").read_text()  # 0.1f exactly


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w, b: (w.__setitem__((1, 1), np.nan), (w, b))[1], "NaN/Inf"),
        (lambda w, b: (w, np.full_like(b, np.inf)), "NaN/Inf"),
        (lambda w, b: (w[:, :2], b[:2]), "do not match"),
        (lambda w, b: (w.astype(np.float64), b), "must be float32"),
    ],
)
def test_emit_rejects_a_bad_head(tiny_build: TinyBuild, mutate: object, message: str) -> None:
    task = _copy_task(tiny_build, "tinybadhead")
    head_path = paths.model_dir(task) / paths.HEAD_NAME
    with np.load(tiny_build.model_dir / paths.HEAD_NAME) as head:
        w, b = mutate(head["w"].copy(), head["b"].copy())
    np.savez(head_path, w=w, b=b)
    with pytest.raises(emit_module.EmitError, match=message):
        emit_module.emit(task, force=True)
    assert not (paths.generated_dir(task) / emit_module.STAMP_NAME).exists()


def test_emit_without_a_model_says_to_train(build_root: Path) -> None:
    with pytest.raises(emit_module.MissingModelError, match=r"run `invoke train --task nomodel`"):
        emit_module.emit("nomodel")


def test_devices_file_holds_federated_and_heldout_windows(tiny_build: TinyBuild) -> None:
    card = tiny_build.card
    with np.load(tiny_build.model_dir / paths.DEVICES_NAME) as devices:
        assert devices["x"].dtype == np.int8
        assert devices["x"].shape[1:] == tuple(card["input_shape"])
        assert set(devices["device_split"].tolist()) == {"federated", "heldout"}
        expected_users = set(card["users"]["federated"] + card["users"]["heldout"])
        assert set(devices["device_user"].tolist()) == expected_users
        assert float(devices["input_scale"]) == np.float32(card["input_quantization"]["scale"])
        for d in range(len(devices["device_name"])):
            mine = devices["device"] == d
            for part in (OWN, TEST):
                assert np.any(mine & (devices["part"] == part))


def test_device_embeddings_are_tflm_outputs_and_cached(tiny_build: TinyBuild) -> None:
    from model_gen.embed import dequantize, device_embeddings, tflm_int8_outputs

    first = device_embeddings(tiny_build.task)
    cache = tiny_build.model_dir / paths.EMBEDDINGS_NAME
    assert cache.exists()
    model = _tflite(tiny_build)
    info = read_tflite(model)
    with np.load(tiny_build.model_dir / paths.DEVICES_NAME) as devices:
        x = devices["x"][:5]
    q = tflm_int8_outputs(model, x)
    np.testing.assert_array_equal(first["int8"][:5], q)
    np.testing.assert_array_equal(first["embedding"][:5],
                                  dequantize(q, info.output.scale, info.output.zero_point))
    mtime = cache.stat().st_mtime_ns
    again = device_embeddings(tiny_build.task)
    assert cache.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again["embedding"], first["embedding"])
