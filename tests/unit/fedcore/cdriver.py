"""Build and call tests/unit/fedcore/fedcore_driver.c (fedcore's rng, head, privacy in C)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from tests.support.cbuild import REPO, build_c_program, run_c_program
from tools.fedref.head import TrainParams
from tools.fedref.privacy import PrivacyParams

FEDCORE = REPO / "firmware" / "lib" / "fedcore"
DRIVER = Path(__file__).with_name("fedcore_driver.c")
SOURCES = [
    FEDCORE / "src" / f"{name}.c"
    for name in ("rng", "examples", "head", "privacy", "ledger", "policy", "crc32")
]


@cache
def driver(max_d: int = 64, max_c: int = 10, max_examples: int = 256) -> Path:
    return build_c_program(
        f"fedcore_driver_{max_d}x{max_c}x{max_examples}",
        [DRIVER, *SOURCES],
        include_dirs=[FEDCORE / "include"],
        defines=[
            f"FEDCORE_MAX_D={max_d}",
            f"FEDCORE_MAX_C={max_c}",
            f"FEDCORE_MAX_EXAMPLES={max_examples}",
        ],
    )


def run(args: list[str], stdin: bytes = b"") -> bytes:
    return run_c_program(driver(), [str(a) for a in args], stdin=stdin)


def rng_words(seed: int, n: int) -> np.ndarray:
    return np.frombuffer(run(["rng", str(seed), str(n)]), dtype="<u4")


def uniform01(seed: int, n: int) -> np.ndarray:
    return np.frombuffer(run(["u01", str(seed), str(n)]), dtype="<f4")


def below(seed: int, bound: int, n: int) -> np.ndarray:
    return np.frombuffer(run(["below", str(seed), str(bound), str(n)]), dtype="<u4")


def chacha_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    return run(["chacha"], key + struct.pack("<I", counter) + nonce)


def stochastic_rounds(seed: int, x: float, scale: float, n: int) -> np.ndarray:
    # repr of a float32 value round-trips through strtof exactly
    args = ["sround", str(seed), repr(float(np.float32(x))), repr(float(np.float32(scale))), n]
    return np.frombuffer(run(args), dtype="<i8")


def discrete_gaussian(seed: int, sigma: float, n: int) -> np.ndarray:
    return np.frombuffer(run(["dgauss", str(seed), repr(float(sigma)), str(n)]), dtype="<i8")


def privatize(delta: np.ndarray, params: PrivacyParams, seed: int) -> tuple[int, int, np.ndarray]:
    """(status, flags, q) from fc_privatize."""
    delta = np.asarray(delta, dtype="<f4")
    fields = (params.clip, params.noise_std, params.scale, params.bits, delta.size)
    head = struct.pack("<fffII", *fields)
    out = run(["privatize", str(seed)], head + delta.tobytes())
    status, flags = struct.unpack_from("<iI", out)
    return status, flags, np.frombuffer(out, dtype="<i4", offset=8)


def round_conditional(
    x: np.ndarray, factor: float, scale: float, bound2: float, seed: int, runs: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """`runs` fc_round_conditional calls on one stream: (accepted attempt per run, the accepted
    q per run as runs×n int64, the stream's next u32 afterwards)."""
    x = np.asarray(x, dtype="<f4")
    head = struct.pack("<ffdI", factor, scale, bound2, x.size)
    out = run(["cround", str(seed), str(runs)], head + x.tobytes())
    record = np.dtype([("attempt", "<u4"), ("q", "<i8", (x.size,))])
    runs_out = np.frombuffer(out, dtype=record, count=runs)
    (next_word,) = struct.unpack_from("<I", out, record.itemsize * runs)
    return runs_out["attempt"].copy(), runs_out["q"].copy(), next_word


def norm_bounds(queries: list[tuple[float, float, int]]) -> np.ndarray:
    """(fc_rounding_norm2_bound, fc_rounded_norm_bound) of each (clip, scale, n): count×2 f64."""
    stdin = struct.pack("<I", len(queries)) + b"".join(struct.pack("<ffI", *q) for q in queries)
    return np.frombuffer(run(["nbound"], stdin), dtype="<f8").reshape(-1, 2)


def clip(x: np.ndarray, bound: float) -> tuple[bool, np.ndarray]:
    x = np.asarray(x, dtype="<f4")
    out = run(["clip"], struct.pack("<fI", bound, x.size) + x.tobytes())
    return bool(struct.unpack_from("<I", out)[0]), np.frombuffer(out, dtype="<f4", offset=4)


def exp_log(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fc_expf(x), fc_logf(x)) element-wise."""
    x = np.asarray(x, dtype="<f4")
    out = np.frombuffer(run(["explog"], struct.pack("<I", x.size) + x.tobytes()), dtype="<f4")
    return out[0::2], out[1::2]


@dataclass
class CTrainResult:
    status: int
    loss: float
    acc: float
    examples: int
    steps: int
    w: np.ndarray
    b: np.ndarray


def train(
    w: np.ndarray,
    b: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    params: TrainParams,
    seed: int,
    capacity: int = 0,
    imprint: float | None = None,
) -> CTrainResult:
    """Add the examples in order to a ring of `capacity` slots (0 = max), then fc_head_train
    (followed by fc_head_imprint with strength `imprint` when given, the device's TRAIN_IMPRINT
    order; epochs 0 then skips training)."""
    d, c = w.shape
    n = len(labels)
    head = struct.pack("<6I", d, c, n, capacity, params.epochs, params.batch)
    head += struct.pack("<4f", params.lr, params.momentum, params.weight_decay, params.example_clip)
    body = np.asarray(w, "<f4").tobytes() + np.asarray(b, "<f4").tobytes()
    for e, y in zip(np.asarray(embeddings, "<f4"), labels, strict=True):
        body += e.tobytes() + struct.pack("<I", int(y))
    extra = [] if imprint is None else [repr(float(np.float32(imprint)))]
    out = run(["train", str(seed), *extra], head + body)
    status, loss, acc, examples, steps = struct.unpack_from("<iffII", out)
    arr = np.frombuffer(out, dtype="<f4", offset=20)
    return CTrainResult(
        status, loss, acc, examples, steps, arr[: d * c].reshape(d, c), arr[d * c : d * c + c]
    )


@dataclass(frozen=True)
class LedgerRun:
    """fc_ledger over a sequence of releases, and its storage record read back."""

    rhos: np.ndarray
    total_rho: float
    epsilon: float
    decode_status: int  # 0: intact record read back, and a flipped bit refused
    decoded: tuple[int, int, float]  # releases, last_round, rho


def ledger(releases: list[tuple[float, float, float, int, int]], delta: float) -> LedgerRun:
    """releases: (clip, noise_std, scale, n_params, round) each."""
    stdin = struct.pack("<I", len(releases)) + b"".join(struct.pack("<fffII", *r) for r in releases)
    out = run(["ledger", repr(delta)], stdin)
    n = len(releases)
    rhos = np.frombuffer(out, dtype="<f8", count=n)
    total, eps = struct.unpack_from("<dd", out, 8 * n)
    status, count, last, rho = struct.unpack_from("<IIId", out, 8 * n + 16)
    return LedgerRun(rhos, total, eps, status, (count, last, rho))


def policy_verdicts(queries: list[tuple[float, float, float, int, int, int]]) -> list[int]:
    """fc_policy_check of the production policy: (clip, noise_std, scale, bits, epochs,
    capacity) each; 0 = allowed, else the NACK code."""
    stdin = b"".join(struct.pack("<fffBHH", *q) for q in queries)
    return list(run(["policy"], stdin))
