"""The C header fedcore/protocol.h and tools/link agree on every shared constant, by name.

Fails (does not skip) when the header is missing: the two twins must exist together.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.link import frame, messages
from tools.link.messages import Capability, MsgType, NackCode, Profile, ResetReason

HEADER = Path(__file__).resolve().parents[3] / "firmware/lib/fedcore/include/fedcore/protocol.h"

# C name → Python value for constants that are not enum members.
SCALARS = {
    "FC_PROTO_VERSION": frame.PROTOCOL_VERSION,
    "FC_HEADER_LEN": frame.HEADER_SIZE,
    "FC_AUTH_LEN": frame.AUTH_SIZE,
    "FC_CRC_LEN": frame.CRC_SIZE,
    "FC_MAX_PAYLOAD": frame.MAX_PAYLOAD,
    "FC_MAX_FRAME": frame.MAX_FRAME,
    "FC_MAX_ENCODED": frame.MAX_ENCODED,
    "FC_DEVICE_ANY": frame.BROADCAST_DEVICE,
    "FC_FLAG_REPLY": frame.FLAG_REPLY,
    "FC_FLAG_AUTH": frame.FLAG_AUTH,
    "FC_FLAG_RESERVED_MASK": frame.FLAG_RESERVED_MASK,
    "FC_BUSY_DETAIL": messages.BUSY_DETAIL,
    "FC_HEAD_MAX_ABS": messages.HEAD_MAX_ABS,
    "FC_HEAD_MAX_L2": messages.HEAD_MAX_L2,
    "FC_SAMPLE_LABELLED": messages.SAMPLE_LABELLED,
    "FC_INFER_USE_GLOBAL": messages.INFER_USE_GLOBAL,
    "FC_INFER_WANT_EMBEDDING": messages.INFER_WANT_EMBEDDING,
    "FC_TRAIN_USE_SEED": messages.TRAIN_USE_SEED,
    "FC_UPDATE_SATURATED": messages.UPDATE_SATURATED,
    "FC_CLEAR_EXAMPLES": messages.CLEAR_EXAMPLES,
    "FC_CLEAR_PERSONAL_HEAD": messages.CLEAR_PERSONAL_HEAD,
    "FC_UPDATE_GET_READY": messages.UPDATE_GET_READY_OFFSET,
    "FC_INFO_LEN": messages.Info.FORMAT.size,
    "FC_MODEL_BEGIN_LEN": messages.ModelBegin.FORMAT.size,
    "FC_MODEL_CHUNK_HDR_LEN": messages.ModelChunk.FORMAT.size,
    "FC_MODEL_COMMIT_LEN": messages.ModelCommit.FORMAT.size,
    "FC_WINDOW_HDR_LEN": messages.Sample.FORMAT.size,
    "FC_TRAIN_LEN": messages.Train.FORMAT.size,
    "FC_UPDATE_READY_LEN": messages.UpdateReady.FORMAT.size,
    "FC_UPDATE_GET_LEN": messages.UpdateGet.FORMAT.size,
    "FC_UPDATE_CHUNK_HDR_LEN": messages.UpdateChunk.FORMAT.size,
    "FC_ACK_LEN": messages.Ack.FORMAT.size,
    "FC_SEED_LEN": messages.Seed.FORMAT.size,
    "FC_STATS_LEN": messages.Stats.FORMAT.size,
    "FC_STATS_COUNTERS": len(messages.Stats.FORMAT.unpack(bytes(messages.Stats.FORMAT.size))),
    "FC_BOARD_NAME_LEN": 15,
}

ENUMS = {
    "FC_MSG_": MsgType,
    "FC_NACK_": NackCode,
    "FC_CAP_": Capability,
    "FC_INFO_PROFILE_": Profile,
    "FC_RESET_": ResetReason,
}


def _defines() -> dict[str, int]:
    """Integer #defines of the header, evaluating references to earlier ones."""
    assert HEADER.exists(), f"{HEADER} is missing: the C twin of tools/link must exist"
    values: dict[str, int] = {}
    for name, expr in re.findall(
        r"^#define\s+(FC_\w+)\s+(.+?)\s*(?://.*|/\*.*)?$", HEADER.read_text(), re.MULTILINE
    ):
        python_expr = re.sub(r"(0x[0-9A-Fa-f]+|\d+)[uUlL]+", r"\1", expr).replace("/", "//")
        try:
            values[name] = int(eval(python_expr, {"__builtins__": {}}, dict(values)))
        except (SyntaxError, NameError, TypeError):
            continue  # not an integer constant (e.g. a function-like macro)
    return values


def test_enums_match_both_ways() -> None:
    defines = _defines()
    for prefix, enum in ENUMS.items():
        c_side = {name[len(prefix) :]: v for name, v in defines.items() if name.startswith(prefix)}
        py_side = {member.name: int(member) for member in enum}
        assert c_side == py_side, f"{prefix}* differ from {enum.__name__}"


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_scalar_constant_matches(name: str) -> None:
    defines = _defines()
    assert name in defines, f"{name} missing from protocol.h"
    assert defines[name] == SCALARS[name], name
