"""Judge the int8 backbone by the TFLM runtime: accuracy and the smallest arena that works."""

from __future__ import annotations

import numpy as np

from model_gen.embed import tflm_int8_outputs


def head_accuracy(embeddings: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    logits = embeddings.astype(np.float32) @ w + b
    return float(np.mean(np.argmax(logits, axis=1) == y))


def tflite_int8_outputs(model: bytes, x_int8: np.ndarray) -> np.ndarray:
    """int8 embeddings from TensorFlow Lite's interpreter (reported beside TFLM; not the oracle)."""
    import tensorflow as tf

    from model_gen.quantize import quiet_native_output

    with quiet_native_output():  # deprecation warning and the XNNPACK banner
        interpreter = tf.lite.Interpreter(model_content=model)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]["index"]
        outp = interpreter.get_output_details()[0]["index"]
        rows = []
        for window in x_int8:
            interpreter.set_tensor(inp, window[None])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(outp).reshape(-1))
    return np.stack(rows)


def _arena_works(model: bytes, arena: int, probe: np.ndarray, expected: np.ndarray) -> bool:
    from model_gen.quantize import quiet_native_output

    try:
        # TFLM explains each failed allocation on stderr: expected while searching.
        with quiet_native_output(show_on_error=False):
            outputs = tflm_int8_outputs(model, probe, arena_size=arena)
    except (RuntimeError, ValueError):
        return False
    return bool(np.array_equal(outputs, expected))


def smallest_arena(model: bytes, probe: np.ndarray, upper: int = 1 << 20) -> int:
    """Smallest TFLM arena (bytes, multiple of 16) that allocates and gives the same outputs."""
    expected = tflm_int8_outputs(model, probe, arena_size=upper)
    low, high = 16, upper  # invariant: high works
    while high - low > 16:
        mid = (low + high) // 2 // 16 * 16
        if _arena_works(model, mid, probe, expected):
            high = mid
        else:
            low = mid
    return high
