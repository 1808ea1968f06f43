"""Float embeddings of int8 windows computed by the TFLM runtime (the firmware's oracle).

`tflm_embeddings` runs the int8 backbone in tflite_micro's MicroInterpreter and dequantizes
the int8 embedding with the output scale / zero point, exactly as `backbone_embed()` does on
the device. `device_embeddings` caches the embeddings of every window in devices.npz under
build/model/<task>/embeddings.npz, keyed by the .tflite's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from model_gen import paths
from model_gen.tflite_info import read_tflite


def tflm_interpreter(model: bytes, arena_size: int | None = None) -> object:
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


def tflm_int8_outputs(
    model: bytes, x_int8: np.ndarray, arena_size: int | None = None
) -> np.ndarray:
    """Raw int8 embedding tensors, one row per window (the bit-exactness reference)."""
    info = read_tflite(model)
    if x_int8.dtype != np.int8 or tuple(x_int8.shape[1:]) != info.input.shape[1:]:
        raise ValueError(f"windows {x_int8.dtype}{x_int8.shape} do not match the backbone "
                         f"input int8{info.input.shape}")
    interpreter = tflm_interpreter(model, arena_size)
    out = np.empty((len(x_int8), int(np.prod(info.output.shape[1:]))), dtype=np.int8)
    for i, window in enumerate(x_int8):
        interpreter.set_input(window[None], 0)
        interpreter.invoke()
        out[i] = interpreter.get_output(0).reshape(-1)
    return out


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float32 as the device does: (q - zero_point) * scale in float32."""
    return (q.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale)


def tflm_embeddings(model: bytes, x_int8: np.ndarray) -> np.ndarray:
    info = read_tflite(model)
    q = tflm_int8_outputs(model, x_int8)
    return dequantize(q, info.output.scale, info.output.zero_point)


def device_embeddings(task: str, model_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Embeddings of every devices.npz window (rows aligned with devices.npz), cached."""
    folder = model_dir or paths.model_dir(task)
    model = (folder / paths.TFLITE_NAME).read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    cache = folder / paths.EMBEDDINGS_NAME
    if cache.exists():
        with np.load(cache) as cached:
            if str(cached["tflite_sha256"]) == sha:
                return {"embedding": cached["embedding"], "int8": cached["int8"]}
    with np.load(folder / paths.DEVICES_NAME) as devices:
        x = devices["x"]
    info = read_tflite(model)
    q = tflm_int8_outputs(model, x)
    emb = dequantize(q, info.output.scale, info.output.zero_point)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, embedding=emb, int8=q, tflite_sha256=np.str_(sha))
    tmp.replace(cache)
    return {"embedding": emb, "int8": q}
