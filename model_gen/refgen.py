"""Generate the plain-C int8 backbone (backbone_ref) from a .tflite, bit-exact with TFLM.

The .tflite is read with the flatbuffer schema that ships with tflite_micro (no TensorFlow).
Everything TFLM computes in its Prepare step (requantization multipliers and shifts, padding,
activation ranges, MEAN's folded 1/n factor) is computed here, in Python, with TFLM's own
formulas, so the generated C only runs the integer inner loops of firmware/lib/backbone_ref.

    python -m model_gen.refgen model.tflite outdir     # writes outdir/backbone_ref_model.c

The generated file defines `backbone_init`, `backbone_embed` (fedcore/backbone.h) and
`backbone_embed_int8` plus the shape constants of backbone_ref/model.h.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from model_gen.tflite_info import _OP_NAMES, UnsupportedModelError, parse_backbone, schema

REPO = Path(__file__).resolve().parents[1]
KERNELS_DIR = REPO / "firmware" / "lib" / "backbone_ref"
TEMPLATES = Path(__file__).resolve().parent / "templates"
OUTPUT_NAME = "backbone_ref_model.c"
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")  # same bytes, new shape: no code, shared buffer
ARENA_ALIGN = 4
INT8, INT32 = schema.TensorType.INT8, schema.TensorType.INT32
_ACT = schema.ActivationFunctionType
_PADDING_SAME = schema.Padding.SAME


# ---------------------------------------------------------------- TFLM arithmetic, in Python


def _round_half_away(value: float) -> int:
    """std::round / TfLiteRound: halves go away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = _round_half_away(fraction * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for int8 (the division is in float32, as in C++)."""

    def quantize(real: float) -> int:
        return zero_point + _round_half_away(float(np.float32(real) / np.float32(scale)))

    low, high = -128, 127
    if activation == _ACT.NONE:
        return low, high
    if activation == _ACT.RELU:
        return max(low, quantize(0.0)), high
    if activation == _ACT.RELU6:
        return max(low, quantize(0.0)), min(high, quantize(6.0))
    if activation == _ACT.RELU_N1_TO_1:
        return max(low, quantize(-1.0)), min(high, quantize(1.0))
    raise UnsupportedModelError(f"fused activation {activation} is not supported")


def same_padding(in_size: int, k: int, stride: int, dilation: int, out_size: int) -> int:
    """TFLM ComputePaddingWithOffset: the leading (top/left) padding."""
    effective = (k - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2


def mean_requant(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """TFLM QuantizedMeanOrSum: fold 1/count into the multiplier, clamped as TFLM clamps."""
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return ((multiplier << extra) // count), shift - extra


# ---------------------------------------------------------------- graph reading


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: int
    scales: list[float]
    zero_points: list[int]
    data: np.ndarray | None  # constant contents, None for activations

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]


@dataclass
class Op:
    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: object


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    input: int
    output: int


def _read_tensor(index: int, raw: schema.TensorT, buffers: list) -> Tensor:
    quant = raw.quantization or schema.QuantizationParametersT()
    scales = [float(s) for s in quant.scale] if quant.scale is not None else []
    zeros = [int(z) for z in quant.zeroPoint] if quant.zeroPoint is not None else []
    buffer = buffers[raw.buffer] if raw.buffer < len(buffers) else None
    data = None
    if buffer is not None and buffer.data is not None and len(buffer.data):
        dtype = {INT8: np.int8, INT32: np.int32}.get(raw.type)
        if dtype is not None:
            data = np.frombuffer(bytes(bytearray(buffer.data)), dtype=dtype).reshape(raw.shape)
    name = raw.name.decode() if isinstance(raw.name, bytes) else str(raw.name)
    return Tensor(index, name, tuple(int(d) for d in raw.shape), raw.type, scales, zeros, data)


def read_graph(tflite: bytes) -> Graph:
    root, sub = parse_backbone(tflite)
    tensors = [_read_tensor(i, t, root.buffers) for i, t in enumerate(sub.tensors)]
    ops = []
    for i, raw in enumerate(sub.operators):
        code = root.operatorCodes[raw.opcodeIndex]
        name = _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
        ops.append(Op(i, name, list(raw.inputs), list(raw.outputs), raw.builtinOptions))
    return Graph(tensors, ops, int(sub.inputs[0]), int(sub.outputs[0]))


# ---------------------------------------------------------------- per-op lowering to C


def _layer_error(op: Op, graph: Graph, why: str) -> UnsupportedModelError:
    out = graph.tensors[op.outputs[0]].name if op.outputs else "?"
    return UnsupportedModelError(f"{why}: operator {op.index} ({op.name}, output tensor '{out}')")


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n    {body}\n}};\n"


@dataclass
class Layer:
    """One compute op lowered to C: constant definitions and one kernel call."""

    op: Op
    kernel: str  # br_conv2d, ...
    params_type: str
    params_fields: dict[str, object]
    arrays: list[str] = field(default_factory=list)
    const_bytes: int = 0
    macs: int = 0
    dsp_arrays: list[str] = field(default_factory=list)  # emitted only when BR_DSP is 1
    dsp_const_bytes: int = 0  # flash the DSP path adds: packed weights, requant blocks
    scratch_bytes: int = 0  # arena bytes the DSP kernel needs while it runs


def _per_channel_requant(op: Op, graph: Graph, inp: Tensor, flt: Tensor, out: Tensor, n: int):
    if any(z != 0 for z in flt.zero_points):
        raise _layer_error(op, graph, "filter zero point must be 0 (symmetric int8 weights)")
    scales = flt.scales if len(flt.scales) > 1 else flt.scales * n
    if len(scales) != n:
        raise _layer_error(op, graph, f"{len(flt.scales)} filter scales for {n} channels")
    pairs = [quantize_multiplier(inp.scale * s / out.scale) for s in scales]
    return np.array([m for m, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64)


def _bias(op: Op, graph: Graph, n: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = graph.tensors[op.inputs[2]]
        if bias.dtype != INT32 or bias.data is None:
            raise _layer_error(op, graph, "bias must be a constant int32 tensor")
        return bias.data.astype(np.int64).reshape(-1)
    return np.zeros(n, np.int64)


def _check_int8(op: Op, graph: Graph, *tensors: Tensor) -> None:
    for tensor in tensors:
        if tensor.dtype != INT8:
            raise _layer_error(op, graph, f"tensor '{tensor.name}' is not int8")


def _requant_arrays(prefix: str, bias: np.ndarray, folded: np.ndarray, mult, shift) -> list[str]:
    return [
        _c_array("int32_t", f"{prefix}_bias", bias),
        _c_array("int32_t", f"{prefix}_bias_folded", folded),
        _c_array("int32_t", f"{prefix}_mult", mult),
        _c_array("int8_t", f"{prefix}_shift", shift),
    ]


# ---------------------------------------------------------------- DSP path (16-bit pairs)


def dsp_requant(
    acc_bound: np.ndarray,
    multiplier: np.ndarray,
    shift: np.ndarray,
    output_offset: int,
    max_abs_weight: np.ndarray,
) -> list[tuple[int, int, int, int]] | None:
    """(pre, multiplier, round, post_shift) per channel for the kernels' SMMULR form of
    MultiplyByQuantizedMultiplier + output offset (kernels.h, br_requant), or None when some
    intermediate could leave int32 (|acc| <= acc_bound) or a weight scaled by 2^pre would not
    fit 16 bits; such a layer keeps the portable kernel.

    smmulr(acc * 2^(1 + left), m) = floor((acc * 2^left * m + 2^30) / 2^31) is TFLM's
    SaturatingRoundingDoublingHighMul; (2v + 2^e - [v < 0]) >> (e + 1) is RoundingDivideByPOT
    (v, e), for e = 0 too; adding offset * 2^(e + 1) before the shift adds the offset after it.
    """
    out = []
    for bound, mult, sh, wmax in zip(
        acc_bound.tolist(),
        multiplier.tolist(),
        shift.tolist(),
        max_abs_weight.tolist(),
        strict=True,
    ):
        pre, e = 1 + max(sh, 0), max(-sh, 0)
        scaled = bound << pre
        v_bound = (scaled * mult + (1 << 31)) >> 32
        if e > 29 or (wmax << pre) > 32767 or scaled >= 1 << 31:
            return None
        round_ = (1 << e) + output_offset * (1 << (e + 1))
        if 2 * v_bound + abs(round_) + 1 >= 1 << 31:
            return None
        out.append((pre, int(mult), round_, e + 1))
    return out


def _acc_bound(inp: Tensor, bias: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Largest |accumulator| per output channel: bias + sum w * (x - zp) over int8 x."""
    widest = max(abs(-128 - inp.zero_point), abs(127 - inp.zero_point))
    return np.abs(bias) + widest * np.abs(weights.astype(np.int64)).sum(axis=1)


def pack_pairs(weights: np.ndarray) -> np.ndarray:
    """[out_c][K] 16-bit values -> int32 words [ceil(out_c/4)][ceil(K/2)][4]: word (b, j, c) holds
    weights 2j (low half) and 2j+1 (high half) of channel 4b+c; padding channels/taps are 0."""
    out_c, k = weights.shape
    c4, pairs = -(-out_c // 4) * 4, (k + 1) // 2
    w = np.zeros((c4, 2 * pairs), np.int64)
    w[:out_c, :k] = weights
    words = (w[:, 0::2] & 0xFFFF) | ((w[:, 1::2] & 0xFFFF) << 16)
    return words.reshape(c4 // 4, 4, pairs).transpose(0, 2, 1).astype(np.uint32).view(np.int32)


def pack_depthwise(weights: np.ndarray) -> np.ndarray:
    """[taps][c] 16-bit values (c a multiple of 4) -> int32 words [c/4][taps][2]: for the
    group of channels g..g+3 and each tap, (w[g], w[g+2]) then (w[g+1], w[g+3]), SXTB16's
    pairing, so the kernel reads one group's taps in order."""
    taps, c = weights.shape
    w = weights.astype(np.int64).reshape(taps, c // 4, 4).transpose(1, 0, 2)
    lo = w[:, :, [0, 1]] & 0xFFFF
    hi = w[:, :, [2, 3]] & 0xFFFF
    return (lo | (hi << 16)).astype(np.uint32).view(np.int32)


def _c_requant(name: str, bias: np.ndarray, rq: list[tuple[int, int, int, int]]) -> str:
    count = -(-len(rq) // 4) * 4
    rows = [
        f"{{{int(b) << pre}, {m}, {r}, {post}, {{0, 0, 0}}}}"
        for b, (pre, m, r, post) in zip(bias.tolist(), rq, strict=True)
    ]
    rows += ["{0, 0, 0, 1, {0, 0, 0}}"] * (count - len(rows))
    body = ",\n    ".join(rows)
    return f"static const br_requant {name}[{count}] = {{\n    {body}\n}};\n"


def _dsp_constants(
    inp: Tensor,
    out: Tensor,
    bias: np.ndarray,
    weights: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]] | None:
    """Weights [out_c][taps] scaled by 2^pre per channel and the requant rows, or None."""
    wmax = np.abs(weights.astype(np.int64)).max(axis=1)
    rq = dsp_requant(_acc_bound(inp, bias, weights), mult, shift, out.zero_point, wmax)
    if rq is None:
        return None
    pre = np.array([r[0] for r in rq], np.int64)
    return weights.astype(np.int64) << pre[:, None], rq


def _use_dsp(
    layer: Layer,
    prefix: str,
    packed: np.ndarray | None,
    folded: np.ndarray,
    rq: list[tuple[int, int, int, int]] | None,
    scratch_bytes: int,
) -> None:
    """Give the layer the DSP kernel's constants when its requantization is provably exact;
    otherwise the layer runs the portable kernel on every target."""
    if rq is None or packed is None:
        layer.params_fields |= dict(packed="NULL", requant="NULL", scratch="NULL")
        return
    layer.dsp_arrays = [
        _c_array("int32_t", f"{prefix}_packed", packed),
        _c_requant(f"{prefix}_requant", folded, rq),
    ]
    layer.dsp_const_bytes = packed.size * 4 + -(-len(rq) // 4) * 4 * 16
    layer.scratch_bytes = scratch_bytes
    layer.params_fields |= dict(
        packed=f"BR_DSP_ONLY({prefix}_packed)",
        requant=f"BR_DSP_ONLY({prefix}_requant)",
        scratch="NULL",  # render() points it into the arena when scratch_bytes > 0
    )
    # A DSP build never runs this layer's portable kernel: its int8 constants stay out of flash.
    for key in ("filter", "bias", "bias_folded", "tap_sums", "multiplier", "shift"):
        if layer.params_fields.get(key, "NULL") != "NULL":
            layer.params_fields[key] = f"BR_PORTABLE_ONLY({layer.params_fields[key]})"


def _lower_conv(op: Op, graph: Graph, depthwise: bool) -> Layer:
    inp, flt, out = (
        graph.tensors[op.inputs[0]],
        graph.tensors[op.inputs[1]],
        graph.tensors[op.outputs[0]],
    )
    _check_int8(op, graph, inp, flt, out)
    if inp.shape[0] != 1 or len(inp.shape) != 4:
        raise _layer_error(op, graph, f"input shape {inp.shape} must be [1, H, W, C]")
    opt = op.options
    _, in_h, in_w, in_c = inp.shape
    _, out_h, out_w, out_c = out.shape
    if depthwise:
        _, k_h, k_w, _ = flt.shape
        multiplier = out_c // in_c
        if multiplier * in_c != out_c:
            raise _layer_error(op, graph, "depthwise output channels are not a multiple of input")
        per_channel_weights = flt.data.reshape(k_h * k_w, out_c).T  # [out_c][taps]
    else:
        _, k_h, k_w, f_c = flt.shape
        if f_c != in_c:
            raise _layer_error(op, graph, "grouped convolution is not supported")
        multiplier = 1
        per_channel_weights = flt.data.reshape(out_c, -1)
    dil_h, dil_w = opt.dilationHFactor, opt.dilationWFactor
    pad_top = pad_left = 0
    if opt.padding == _PADDING_SAME:
        pad_top = same_padding(in_h, k_h, opt.strideH, dil_h, out_h)
        pad_left = same_padding(in_w, k_w, opt.strideW, dil_w, out_w)
    mult, shift = _per_channel_requant(op, graph, inp, flt, out, out_c)
    bias = _bias(op, graph, out_c)
    input_offset = -inp.zero_point
    folded = bias + input_offset * per_channel_weights.astype(np.int64).sum(axis=1)
    act_min, act_max = activation_range(opt.fusedActivationFunction, out.scale, out.zero_point)
    prefix = f"l{op.index}"
    fields = dict(
        in_h=in_h,
        in_w=in_w,
        in_c=in_c,
        out_h=out_h,
        out_w=out_w,
        out_c=out_c,
        k_h=k_h,
        k_w=k_w,
        stride_h=opt.strideH,
        stride_w=opt.strideW,
        dil_h=dil_h,
        dil_w=dil_w,
        pad_top=pad_top,
        pad_left=pad_left,
        depth_multiplier=multiplier,
        input_offset=input_offset,
        output_offset=out.zero_point,
        act_min=act_min,
        act_max=act_max,
        filter=f"{prefix}_filter",
        bias=f"{prefix}_bias",
        bias_folded=f"{prefix}_bias_folded",
        multiplier=f"{prefix}_mult",
        shift=f"{prefix}_shift",
    )
    arrays = [
        _c_array("int8_t", f"{prefix}_filter", flt.data),
        *_requant_arrays(prefix, bias, folded, mult, shift),
    ]
    if depthwise:
        fields["tap_sums"] = "NULL"
    else:  # lets border pixels add the input offset for the taps they keep, see kernels.c
        tap_sums = flt.data.astype(np.int64).reshape(out_c, k_h * k_w, in_c).sum(axis=2)
        arrays.append(_c_array("int32_t", f"{prefix}_tap_sums", tap_sums))
        fields["tap_sums"] = f"{prefix}_tap_sums"
    taps = k_h * k_w * (1 if depthwise else in_c)
    layer = Layer(
        op,
        "br_depthwise_conv2d" if depthwise else "br_conv2d",
        "br_conv_params",
        fields,
        arrays,
        flt.size + out_c * (13 if depthwise else 13 + 4 * k_h * k_w),
        out_h * out_w * out_c * taps,
    )
    dsp = _dsp_constants(inp, out, bias, per_channel_weights, mult, shift)
    if depthwise:
        # The DSP depthwise kernel reads 4 channels of one input pixel per word.
        fits = dsp is not None and multiplier == 1 and out_c % 4 == 0
        packed = pack_depthwise(dsp[0].T) if fits else None
        window = -(-k_h * k_w * out_c // 4) * 4  # a border pixel's zero-point-filled window
        _use_dsp(layer, prefix, packed, folded, dsp and dsp[1], window)
    else:
        k = k_h * k_w * in_c
        packed = pack_pairs(dsp[0]) if dsp else None
        _use_dsp(layer, prefix, packed, folded, dsp and dsp[1], 8 * ((k + 1) // 2))
    return layer


def _lower_fully_connected(op: Op, graph: Graph) -> Layer:
    inp, flt, out = (
        graph.tensors[op.inputs[0]],
        graph.tensors[op.inputs[1]],
        graph.tensors[op.outputs[0]],
    )
    _check_int8(op, graph, inp, flt, out)
    out_c, depth = flt.shape
    if inp.size % depth:
        raise _layer_error(op, graph, f"input of {inp.size} values is not a multiple of {depth}")
    mult, shift = _per_channel_requant(op, graph, inp, flt, out, out_c)
    bias = _bias(op, graph, out_c)
    folded = bias - inp.zero_point * flt.data.astype(np.int64).sum(axis=1)
    act_min, act_max = activation_range(
        op.options.fusedActivationFunction, out.scale, out.zero_point
    )
    prefix = f"l{op.index}"
    fields = dict(
        batches=inp.size // depth,
        depth=depth,
        out_c=out_c,
        output_offset=out.zero_point,
        act_min=act_min,
        act_max=act_max,
        filter=f"{prefix}_filter",
        bias_folded=f"{prefix}_bias_folded",
        multiplier=f"{prefix}_mult",
        shift=f"{prefix}_shift",
    )
    arrays = [
        _c_array("int8_t", f"{prefix}_filter", flt.data),
        *_requant_arrays(prefix, bias, folded, mult, shift)[1:],
    ]
    layer = Layer(
        op,
        "br_fully_connected",
        "br_fc_params",
        fields,
        arrays,
        flt.size + out_c * 9,
        inp.size // depth * depth * out_c,
    )
    dsp = _dsp_constants(inp, out, bias, flt.data, mult, shift)
    packed = pack_pairs(dsp[0]) if dsp else None
    _use_dsp(layer, prefix, packed, folded, dsp and dsp[1], 8 * ((depth + 1) // 2))
    return layer


def _lower_pool(op: Op, graph: Graph, kernel: str) -> Layer:
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    _check_int8(op, graph, inp, out)
    if inp.scale != out.scale or inp.zero_point != out.zero_point:
        raise _layer_error(op, graph, "pooling must keep the input quantization")
    opt = op.options
    _, in_h, in_w, c = inp.shape
    _, out_h, out_w, _ = out.shape
    pad_top = pad_left = 0
    if opt.padding == _PADDING_SAME:
        pad_top = same_padding(in_h, opt.filterHeight, opt.strideH, 1, out_h)
        pad_left = same_padding(in_w, opt.filterWidth, opt.strideW, 1, out_w)
    act_min, act_max = activation_range(opt.fusedActivationFunction, out.scale, out.zero_point)
    fields = dict(
        in_h=in_h,
        in_w=in_w,
        c=c,
        out_h=out_h,
        out_w=out_w,
        k_h=opt.filterHeight,
        k_w=opt.filterWidth,
        stride_h=opt.strideH,
        stride_w=opt.strideW,
        pad_top=pad_top,
        pad_left=pad_left,
        act_min=act_min,
        act_max=act_max,
    )
    return Layer(op, kernel, "br_pool_params", fields)


def _lower_mean(op: Op, graph: Graph) -> Layer:
    inp, axes_t, out = (
        graph.tensors[op.inputs[0]],
        graph.tensors[op.inputs[1]],
        graph.tensors[op.outputs[0]],
    )
    _check_int8(op, graph, inp, out)
    if axes_t.data is None:
        raise _layer_error(op, graph, "MEAN axes must be constant")
    rank = len(inp.shape)
    axes = sorted({int(a) % rank for a in axes_t.data.reshape(-1)})
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise _layer_error(op, graph, f"MEAN over non-adjacent axes {axes} is not supported")
    outer = int(np.prod(inp.shape[: axes[0]]))
    reduce = int(np.prod(inp.shape[axes[0] : axes[-1] + 1]))
    inner = int(np.prod(inp.shape[axes[-1] + 1 :]))
    same = inp.scale == out.scale and inp.zero_point == out.zero_point
    multiplier, shift = quantize_multiplier(inp.scale / out.scale)
    if not same:
        multiplier, shift = mean_requant(multiplier, shift, reduce)
    fields = dict(
        outer=outer,
        reduce=reduce,
        inner=inner,
        same_quant=int(same),
        input_zero_point=inp.zero_point,
        output_zero_point=out.zero_point,
        multiplier=multiplier,
        shift=shift,
    )
    return Layer(op, "br_mean", "br_mean_params", fields)


def lower(op: Op, graph: Graph) -> Layer:
    if op.name == "CONV_2D":
        return _lower_conv(op, graph, depthwise=False)
    if op.name == "DEPTHWISE_CONV_2D":
        return _lower_conv(op, graph, depthwise=True)
    if op.name == "FULLY_CONNECTED":
        return _lower_fully_connected(op, graph)
    if op.name == "MAX_POOL_2D":
        return _lower_pool(op, graph, "br_max_pool")
    if op.name == "AVERAGE_POOL_2D":
        return _lower_pool(op, graph, "br_average_pool")
    if op.name == "MEAN":
        return _lower_mean(op, graph)
    raise _layer_error(op, graph, f"unsupported op {op.name}")


# ---------------------------------------------------------------- memory planning


@dataclass
class Buffer:
    tensors: list[int]
    size: int
    first: int  # op index that writes it
    last: int  # last op index that reads it
    offset: int = -1


@dataclass
class Band:
    """A producer layer whose output the next layer (the consumer) reads as it is made: only
    `rows` rows of it exist at once (br_conv_banded), so the pair is one kernel call."""

    producer: Layer
    consumer: Layer
    rows: int
    row_bytes: int

    @property
    def size(self) -> int:
        return self.rows * self.row_bytes


BANDABLE = ("br_conv2d", "br_depthwise_conv2d")


def find_bands(graph: Graph, layers: list[Layer]) -> list[Band]:
    """Conv/depthwise pairs where the consumer is the only reader of the producer's output and
    a band of the consumer's filter height is smaller than the whole tensor."""
    readers: dict[int, list[int]] = {}
    for op in graph.ops:
        for src in op.inputs:
            readers.setdefault(src, []).append(op.index)
    bands: list[Band] = []
    for producer, consumer in itertools.pairwise(layers):
        tensor = producer.op.outputs[0]
        if bands and bands[-1].consumer is producer:
            continue  # a layer is in one band at most
        if producer.kernel not in BANDABLE or consumer.kernel not in BANDABLE:
            continue
        if consumer.op.inputs[0] != tensor or readers.get(tensor) != [consumer.op.index]:
            continue
        if tensor == graph.output:
            continue
        f = consumer.params_fields
        rows = (int(f["k_h"]) - 1) * int(f["dil_h"]) + 1
        row_bytes = int(f["in_w"]) * int(f["in_c"])
        if rows < int(f["in_h"]):
            bands.append(Band(producer, consumer, rows, row_bytes))
    return bands


def plan_arena(
    graph: Graph, scratch: dict[int, int] | None = None, bands: list[Band] | None = None
) -> tuple[dict[int, Buffer | None], int]:
    """Greedy offsets (largest first) so buffers with overlapping lifetimes never overlap.

    Returns tensor index -> Buffer (None for the caller's input) and the arena size.
    Alias ops (RESHAPE, ...) put their output in their input's buffer. `scratch` maps an op
    index to the bytes its kernel needs while it runs (placed as buffers with no tensor, keyed
    in the result by -1 - op index). A band shrinks its tensor to the band and makes its two
    ops one stage: everything either op touches is live for the whole stage.
    """
    bands = bands or []
    band_size = {b.producer.op.outputs[0]: b.size for b in bands}
    stage = {}  # op index -> (first, last) op index of the kernel call it runs in
    for b in bands:
        stage[b.producer.op.index] = stage[b.consumer.op.index] = (
            b.producer.op.index,
            b.consumer.op.index,
        )
    where: dict[int, Buffer | None] = {graph.input: None}
    buffers: list[Buffer] = []
    for op_index, size in (scratch or {}).items():
        if size > 0:
            first, last = stage.get(op_index, (op_index, op_index))
            where[-1 - op_index] = Buffer([], size, first, last)
            buffers.append(where[-1 - op_index])
    for op in graph.ops:
        first, last = stage.get(op.index, (op.index, op.index))
        out = op.outputs[0]
        if op.name in ALIAS_OPS:
            where[out] = where[op.inputs[0]]
            if where[out] is not None:
                where[out].tensors.append(out)
        else:
            size = band_size.get(out, graph.tensors[out].size)
            where[out] = Buffer([out], size, first, first)
            buffers.append(where[out])
        for src in op.inputs:
            if where.get(src) is not None:
                where[src].last = max(where[src].last, last)
    if where.get(graph.output) is not None:
        where[graph.output].last = len(graph.ops)
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first)):
        live = sorted(
            (p for p in placed if p.first <= buf.last and buf.first <= p.last),
            key=lambda p: p.offset,
        )
        offset = 0
        for other in live:
            if offset + buf.size <= other.offset:
                break
            offset = max(offset, _align(other.offset + other.size))
        buf.offset = offset
        placed.append(buf)
    arena = max((b.offset + b.size for b in placed), default=0)
    return where, _align(arena)


def _align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


# ---------------------------------------------------------------- emission


def _check_model(graph: Graph) -> None:
    for role, idx in (("input", graph.input), ("output", graph.output)):
        tensor = graph.tensors[idx]
        if tensor.dtype != INT8:
            raise UnsupportedModelError(f"backbone {role} '{tensor.name}' must be int8")
    if graph.output == graph.input:
        raise UnsupportedModelError("backbone output is its input")


def _stages(layers: list[Layer], bands: list[Band], where: dict) -> list[dict]:
    """The kernel calls in order: one per layer, one per banded pair."""
    band_of = {b.producer.op.index: b for b in bands}
    banded = {b.consumer.op.index for b in bands}
    stages = []
    for layer in layers:
        if layer.op.index in banded:
            continue
        band = band_of.get(layer.op.index)
        if band is None:
            stages.append(
                dict(
                    name=f"{layer.op.index} {layer.op.name}",
                    kernel=layer.kernel,
                    params=f"l{layer.op.index}_params",
                    src=_buffer_expr(where, layer.op.inputs[0]),
                    dst=_buffer_expr(where, layer.op.outputs[0]),
                    layers=[layer],
                    band=None,
                )
            )
            continue
        consumer = band.consumer
        stages.append(
            dict(
                name=f"{layer.op.index} {layer.op.name} + {consumer.op.index} {consumer.op.name}",
                kernel="br_conv_banded",
                params=f"l{layer.op.index}_band",
                src=_buffer_expr(where, layer.op.inputs[0]),
                dst=_buffer_expr(where, consumer.op.outputs[0]),
                layers=[layer, consumer],
                band=dict(
                    producer=f"l{layer.op.index}_params",
                    producer_kernel=layer.kernel,
                    consumer=f"l{consumer.op.index}_params",
                    consumer_kernel=consumer.kernel,
                    buffer=_buffer_expr(where, layer.op.outputs[0]),
                    rows=band.rows,
                ),
            )
        )
    return stages


def _buffer_expr(where: dict[int, Buffer | None], tensor: int) -> str:
    buf = where[tensor]
    return "input" if buf is None else f"&ARENA[{buf.offset}]"


def render(graph: Graph, header_line: str) -> tuple[str, dict]:
    """The generated C and its numbers (arena bytes, constant bytes, MACs, DSP constant bytes,
    and per kernel call: name, kernel, whether it has a DSP kernel, MACs, DSP bytes)."""
    _check_model(graph)
    layers = [lower(op, graph) for op in graph.ops if op.name not in ALIAS_OPS]
    bands = find_bands(graph, layers)
    scratch = {la.op.index: la.scratch_bytes for la in layers}
    where, arena_bytes = plan_arena(graph, scratch, bands)
    for layer in layers:
        if layer.scratch_bytes:
            word = where[-1 - layer.op.index].offset // 4
            layer.params_fields["scratch"] = f"&arena_words[{word}]"
    if where[graph.output] is None:
        raise UnsupportedModelError("backbone output is a reshape of its input")
    out = graph.tensors[graph.output]
    calls = [
        dict(
            layer=layer,
            src=_buffer_expr(where, layer.op.inputs[0]),
            dst=_buffer_expr(where, layer.op.outputs[0]),
            out_name=graph.tensors[layer.op.outputs[0]].name,
        )
        for layer in layers
    ]
    stages = _stages(layers, bands, where)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    text = env.get_template("backbone_ref_model.c.j2").render(
        header_line=header_line,
        calls=calls,
        stages=stages,
        arena_bytes=max(arena_bytes, ARENA_ALIGN),
        input_len=graph.tensors[graph.input].size,
        output_len=out.size,
        output_offset=where[graph.output].offset,
        output_scale=float(np.float32(out.scale)).hex(),
        output_zero_point=out.zero_point,
    )
    numbers = {
        "arena_bytes": arena_bytes,
        "const_bytes": sum(layer.const_bytes for layer in layers),
        "macs": sum(layer.macs for layer in layers),
        "dsp_const_bytes": sum(layer.dsp_const_bytes for layer in layers),
    }
    numbers["layers"] = [
        dict(
            name=stage["name"],
            kernel=stage["kernel"],
            dsp=all(bool(la.dsp_arrays) for la in stage["layers"]),
            macs=sum(la.macs for la in stage["layers"]),
            dsp_const_bytes=sum(la.dsp_const_bytes for la in stage["layers"]),
        )
        for stage in stages
    ]
    return text, numbers


def measure_m4_flash(model_c: Path, extra_flags: tuple[str, ...] = ()) -> int | None:
    """text + data bytes of the generated model and kernels built for Cortex-M4 (-O2, the DSP
    path unless extra_flags has -DBR_PORTABLE=1), or None when arm-none-eabi-gcc is missing."""
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    if gcc is None or size is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        objs = []
        for i, src in enumerate([model_c, KERNELS_DIR / "src" / "kernels.c"]):
            obj = Path(tmp) / f"{i}.o"
            subprocess.run(
                [
                    gcc,
                    *M4_CFLAGS,
                    *extra_flags,
                    "-I",
                    str(KERNELS_DIR / "include"),
                    "-I",
                    str(REPO / "firmware/lib/fedcore/include"),
                    "-c",
                    str(src),
                    "-o",
                    str(obj),
                ],
                check=True,
                capture_output=True,
            )
            objs.append(str(obj))
        report = subprocess.run([size, "-B", *objs], check=True, capture_output=True, text=True)
    rows = [line.split() for line in report.stdout.splitlines()[1:]]
    return sum(int(row[0]) + int(row[1]) for row in rows)


M4_CFLAGS = (
    "-std=c11",
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
    "-O2",
    "-ffunction-sections",
    "-fdata-sections",
)


def generate_backbone_ref(tflite_path: Path, out_dir: Path, header_line: str) -> dict[str, int]:
    """Write out_dir/backbone_ref_model.c and return its RAM and flash cost.

    ref_ram_bytes: the planned activation arena (the caller's input window not included).
    ref_flash_bytes: measured text + data of the generated file plus the backbone_ref kernels
    compiled for Cortex-M4 at -O2 (weights, parameter blocks and code); without an ARM compiler
    it falls back to the constant bytes plus 4 KiB for code (an estimate).
    """
    text, numbers = render(read_graph(Path(tflite_path).read_bytes()), header_line)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUTPUT_NAME
    target.write_text(text)
    flash = measure_m4_flash(target)
    if flash is None:
        flash = numbers["const_bytes"] + 4096
    return {"ref_ram_bytes": numbers["arena_bytes"], "ref_flash_bytes": flash}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tflite", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--header", default=None, help="first line of the generated file")
    args = parser.parse_args(argv)
    header = args.header or (
        f"/* generated by fedhead model_gen refgen from {args.tflite.name} — do not edit */"
    )
    print(generate_backbone_ref(args.tflite, args.out_dir, header))


if __name__ == "__main__":
    main()
