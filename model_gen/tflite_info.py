"""Read what the pipeline needs from a .tflite flatbuffer, without importing TensorFlow.

Uses the flatbuffer schema module that ships with tflite_micro (about 0.1 s to import; it
needs only the `flatbuffers` package), so the emit path and the PlatformIO extra script stay
fast. Also the single place that knows which ops the firmware backbones support.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

# Builtin op -> MicroMutableOpResolver method. These are the ops backbone_ref implements.
SUPPORTED_OPS = {
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "FULLY_CONNECTED": "AddFullyConnected",
    "MAX_POOL_2D": "AddMaxPool2D",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "RESHAPE": "AddReshape",
    "MEAN": "AddMean",
}
_OP_NAMES = {
    value: name for name, value in vars(schema.BuiltinOperator).items() if name.isupper()
}
_TYPE_NAMES = {value: name for name, value in vars(schema.TensorType).items() if name.isupper()}


class UnsupportedModelError(ValueError):
    """The model uses something the firmware backbones cannot run."""


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str  # schema name: INT8, FLOAT32, ...
    scale: float
    zero_point: int


@dataclass(frozen=True)
class TfliteInfo:
    ops: list[str]  # distinct builtin op names, in first-use order
    input: TensorInfo
    output: TensorInfo


def _tensor_info(tensor: schema.TensorT) -> TensorInfo:
    quant = tensor.quantization
    scales = list(quant.scale) if quant is not None and quant.scale is not None else []
    zeros = list(quant.zeroPoint) if quant is not None and quant.zeroPoint is not None else []
    return TensorInfo(
        shape=tuple(int(d) for d in tensor.shape),
        dtype=_TYPE_NAMES.get(tensor.type, str(tensor.type)),
        scale=float(scales[0]) if scales else 0.0,
        zero_point=int(zeros[0]) if zeros else 0,
    )


def parse_backbone(data: bytes) -> tuple[schema.ModelT, schema.SubGraphT]:
    """The model's object tree and its only subgraph, which must have one input and output."""
    root = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
    if len(root.subgraphs) != 1:
        raise UnsupportedModelError(f"model has {len(root.subgraphs)} subgraphs; need exactly 1")
    graph = root.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedModelError("backbone must have exactly one input and one output")
    return root, graph


def read_tflite(model: bytes | Path) -> TfliteInfo:
    data = Path(model).read_bytes() if isinstance(model, Path) else model
    root, graph = parse_backbone(data)
    ops: list[str] = []
    for op in graph.operators:
        code = root.operatorCodes[op.opcodeIndex]
        name = _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
        if name not in ops:
            ops.append(name)
    return TfliteInfo(
        ops=ops,
        input=_tensor_info(graph.tensors[graph.inputs[0]]),
        output=_tensor_info(graph.tensors[graph.outputs[0]]),
    )


def check_supported(info: TfliteInfo) -> None:
    """Fail with the offending ops / types named when the firmware cannot run the model."""
    unsupported = [op for op in info.ops if op not in SUPPORTED_OPS]
    if unsupported:
        raise UnsupportedModelError(
            f"ops {unsupported} are not supported by the firmware backbones "
            f"(supported: {sorted(SUPPORTED_OPS)})"
        )
    for role, tensor in (("input", info.input), ("output", info.output)):
        if tensor.dtype != "INT8":
            raise UnsupportedModelError(f"backbone {role} is {tensor.dtype}; must be INT8")
