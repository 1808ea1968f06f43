"""Twin of fedcore/head.c: forward, softmax cross-entropy and mini-batch SGD in float32.

Follows the C operation order (fedcore/head.h documents the algorithm): sums run in index order
(np.cumsum is a sequential float32 sum, unlike np.sum or matmul, which reorder), exp and log
are fc_expf / fc_logf replayed operation by operation in numpy float32 (`expf`, `logf`, which
take arrays, so the vectorized twin shares them), and shuffles draw from the same ChaCha20
stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tools.fedref.rng import Rng

F32 = np.float32


@dataclass(frozen=True)
class TrainParams:
    """The optimizer fields of TRAIN (docs/PROTOCOL.md section 2.4)."""

    lr: float
    epochs: int
    batch: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    example_clip: float = 0.0

    def check(self) -> None:
        """Same acceptance rule as fc_train_params_check; raises ValueError."""
        values = (self.lr, self.momentum, self.weight_decay, self.example_clip)
        if not all(math.isfinite(F32(v)) for v in values):
            raise ValueError("non-finite training parameter")
        ok = (
            F32(self.lr) > 0
            and 1 <= self.epochs <= 0xFFFF
            and 1 <= self.batch <= 0xFFFF
            and 0 <= F32(self.momentum) < 1
            and F32(self.weight_decay) >= 0
            and F32(self.example_clip) >= 0
        )
        if not ok:
            raise ValueError(f"training parameter out of range: {self}")


@dataclass
class TrainResult:
    loss: float
    acc: float
    examples: int
    steps: int


def seq_sum(values: np.ndarray, start: np.float32 | np.ndarray | None = None) -> np.ndarray:
    """Sequential float32 sum over axis 0, like a C loop `acc += v[i]` (optionally from start)."""
    stacked = values if start is None else np.concatenate([np.asarray(start)[None], values])
    return np.cumsum(stacked, axis=0, dtype=F32)[-1]


def forward(w: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    """logits = b + sum_j e[j] * w[j] accumulated over j in order (fc_head_forward)."""
    return seq_sum(e[:, None] * w, start=b)


def predict(w: np.ndarray, b: np.ndarray, e: np.ndarray) -> int:
    return int(np.argmax(forward(w, b, e)))


# fc_expf / fc_logf constants (fedcore/head.h), as float32.
LOG2E = F32(1.44269504088896341)
LN2_HI = F32(0.693359375)
LN2_LO = F32(-2.12194440e-4)
ROUND_MAGIC = F32(12582912.0)
EXP_MIN = F32(-80.0)
EXP_POLY = tuple(
    F32(v)
    for v in (
        1.9875691500e-4,
        1.3981999507e-3,
        8.3334519073e-3,
        4.1665795894e-2,
        1.6666665459e-1,
        5.0000001201e-1,
    )
)
LOG_POLY = tuple(F32(v) for v in (0.111111111, 0.142857143, 0.2, 0.333333333, 1.0))
SQRT2 = F32(1.41421356)
SMALLEST_NORMAL = F32(1.17549435e-38)
LOG_SMALLEST_NORMAL = F32(-87.3365447)


def expf(x: np.ndarray) -> np.ndarray:
    """fc_expf element-wise: float32 operations in the C order (x <= 0; see fedcore/head.h)."""
    x = np.asarray(x, dtype=F32)
    valid = x >= EXP_MIN  # False for NaN
    x = np.where(valid, np.minimum(x, F32(0)), F32(0))
    n = x * LOG2E + ROUND_MAGIC
    n = n - ROUND_MAGIC
    r = x - n * LN2_HI
    r = r - n * LN2_LO
    p = np.full_like(r, EXP_POLY[0])
    for coef in EXP_POLY[1:]:
        p = p * r + coef
    p = p * (r * r) + r
    p = p + F32(1)
    scale = ((n.astype(np.int32) + 127).astype(np.uint32) << np.uint32(23)).view(F32)
    return np.where(valid, p * scale, F32(0)).astype(F32)


def logf(x: np.ndarray) -> np.ndarray:
    """fc_logf element-wise (normal x > 0; the special cases of fedcore/head.h)."""
    x = np.asarray(x, dtype=F32)
    safe = np.where((x >= SMALLEST_NORMAL) & np.isfinite(x), x, F32(1))
    bits = safe.view(np.uint32)
    e = (bits >> np.uint32(23)).astype(np.int32) - 127
    f = ((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)).view(F32)
    high = f > SQRT2
    f = np.where(high, f * F32(0.5), f)
    e = np.where(high, e + 1, e)
    u = (f - F32(1)) / (f + F32(1))
    u2 = u * u
    s = np.full_like(u, LOG_POLY[0])
    for coef in LOG_POLY[1:]:
        s = s * u2 + coef
    log_f = F32(2) * u * s
    ef = e.astype(F32)
    out = ef * LN2_HI + (ef * LN2_LO + log_f)
    with np.errstate(invalid="ignore"):
        special = np.where(x == 0, F32(-np.inf), np.where(x > 0, x, F32(np.nan)))
    out = np.where(x < SMALLEST_NORMAL, LOG_SMALLEST_NORMAL, out)
    return np.where((x > 0) & np.isfinite(x), out, special).astype(F32)


def softmax_xent(z: np.ndarray, label: int) -> tuple[np.ndarray, np.float32]:
    """(probabilities, loss) as fc_softmax_xent computes them."""
    shifted = z - z[int(np.argmax(z))]
    p = expf(shifted)
    s = seq_sum(p)
    return p / s, F32(logf(s) - shifted[label])


def clip_example_grad(g: np.ndarray, e: np.ndarray, clip: np.float32) -> np.ndarray:
    """Scale g so that the example gradient (e g^T and g) has L2 norm <= clip."""
    ee = seq_sum(e * e)
    gg = seq_sum(g * g)
    norm = np.sqrt(gg * (ee + F32(1)))
    return g * (clip / norm) if norm > clip else g


def shuffle(order: list[int], rng: Rng) -> None:
    """Fisher-Yates in place, i from n-1 down to 1 (fc_head_train)."""
    for i in range(len(order) - 1, 0, -1):
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]


def train(
    w: np.ndarray,
    b: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    params: TrainParams,
    rng: Rng,
) -> tuple[np.ndarray, np.ndarray, TrainResult]:
    """Twin of fc_head_train on examples given oldest first; returns new (w, b, result)."""
    params.check()
    n = len(labels)
    if n == 0:
        raise ValueError("no examples")
    w, b = np.array(w, dtype=F32), np.array(b, dtype=F32)
    emb = np.asarray(embeddings, dtype=F32)
    lr, mom, wd = F32(params.lr), F32(params.momentum), F32(params.weight_decay)
    clip = F32(params.example_clip)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    order = list(range(n))
    steps = 0
    for _ in range(params.epochs):
        shuffle(order, rng)
        loss_sum, correct = F32(0), 0
        for start in range(0, n, params.batch):
            batch = order[start : start + params.batch]
            gw, gb = np.zeros_like(w), np.zeros_like(b)
            for idx in batch:
                e, y = emb[idx], int(labels[idx])
                z = forward(w, b, e)
                p, loss = softmax_xent(z, y)
                loss_sum = F32(loss_sum + loss)
                correct += int(np.argmax(z)) == y
                g = p.copy()
                g[y] -= F32(1)
                if clip > 0:
                    g = clip_example_grad(g, e, clip)
                gw = gw + e[:, None] * g[None, :]
                gb = gb + g
            k = F32(1) / F32(len(batch))
            vw = mom * vw + (gw * k + wd * w)
            w = w - lr * vw
            vb = mom * vb + gb * k
            b = b - lr * vb
            steps += 1
    result = TrainResult(float(loss_sum / F32(n)), float(F32(correct) / F32(n)), n, steps)
    return w, b, result


def imprint(
    w: np.ndarray, b: np.ndarray, embeddings: np.ndarray, labels: np.ndarray, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """Twin of fc_head_imprint on examples given oldest first: W[:, k] += s * mean_k and
    b[k] -= (s / 2) * |mean_k|^2 for every class k with examples (float32, C order)."""
    strength = F32(strength)
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"imprint strength must be finite and >= 0, got {strength}")
    emb = np.asarray(embeddings, dtype=F32)
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no examples")
    w, b = np.array(w, dtype=F32), np.array(b, dtype=F32)
    half = F32(0.5) * strength
    for k in range(w.shape[1]):
        rows = emb[labels == k]
        if len(rows) == 0:
            continue
        mean = seq_sum(rows, start=np.zeros(w.shape[0], F32)) / F32(len(rows))
        w[:, k] = w[:, k] + strength * mean
        b[k] = b[k] - half * seq_sum(mean * mean, start=F32(0))
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
        raise ValueError("imprinting overflowed")
    return w, b


def delta(w_local: np.ndarray, b_local: np.ndarray, w_global: np.ndarray, b_global: np.ndarray):
    """Flat Δ = local - global: W row-major then b (fc_head_delta, the UPDATE order)."""
    return np.concatenate([(w_local - w_global).reshape(-1), b_local - b_global]).astype(F32)
