"""Every message packs and unpacks to itself; wrong payload sizes are refused."""

from __future__ import annotations

import pytest

from tools.link import messages as m

EXAMPLES = [
    m.Hello(),
    m.StatsGet(),
    m.Reset(),
    m.Info(
        0x0102,
        1,
        b"esp32".ljust(15, b"\0"),
        b"\x01" * 32,
        b"\x02" * 32,
        3,
        64,
        7,
        600,
        0b10111,
        123456,
        10,
        64,
        1,
        2,
        0b110,
        0,
        3.5,
        16.0,
        2.0**-17,
        4,
        12,
        1.0,
        4.0,
        4096,
        2.0**-16,
    ),
    m.Log(2, "héllo".encode()),
    m.ModelBegin(4, 1820, 64, 7, b"\x03" * 32),
    m.ModelChunk(4, 2040, b"\x00\x01" * 10),
    m.ModelCommit(4),
    m.Sample(1, 6, 3, b"\x01\xff\x00"),
    m.Infer(3, 0, 2, b"\x7f\x80"),
    m.Result(2, 1, (0.5, -1.25, 3.0), (1.0, 2.0), 1, 777),
    m.Train(9, 0.25, 2, 16, 0.5, 0.125, 0.0, 1.5, 0.75, 0.0078125, 16, 1, 0, 2**63 + 5),
    m.UpdateReady(9, 4, 455, 16, 2, 0.0078125, 0.5, 0.75, 910, 0xDEADBEEF, 2.5),
    m.UpdateGet(9, m.UPDATE_GET_READY_OFFSET, 0),
    m.UpdateChunk(9, 0, b"\xaa" * 100),
    m.Ack(17, m.MsgType.MODEL_CHUNK, 0, 4096),
    m.Nack(17, m.MsgType.TRAIN, m.NackCode.BAD_PARAM, 2),
    m.Stats(*range(10)),
    m.Clear(m.CLEAR_EXAMPLES),
    m.Seed(bytes(range(32))),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda msg: msg.TYPE.name)
def test_round_trip(message: m.Message) -> None:
    assert m.parse_payload(message.TYPE, message.pack()) == message


@pytest.mark.parametrize("message", [x for x in EXAMPLES if x.pack()], ids=lambda x: x.TYPE.name)
def test_truncated_payload_is_refused(message: m.Message) -> None:
    payload = message.pack()
    # Messages with a byte tail may be shorter, but never shorter than their fixed part.
    cut = message.FORMAT.size - 1 if getattr(message, "TAIL", None) else len(payload) - 1
    with pytest.raises(m.MessageError):
        m.parse_payload(message.TYPE, payload[:cut])


def test_fixed_payload_with_extra_byte_is_refused() -> None:
    with pytest.raises(m.MessageError, match="TRAIN"):
        m.parse_payload(m.MsgType.TRAIN, m.Train(1).pack() + b"\x00")


def test_unknown_type_is_refused() -> None:
    with pytest.raises(m.MessageError, match="unknown message type"):
        m.parse_payload(0x7E, b"")


def test_documented_sizes() -> None:
    assert len(m.Train(1).pack()) == 48
    assert len(EXAMPLES[3].pack()) == 144  # INFO
    assert m.UpdateReady.FORMAT.size == 36
    assert len(m.Stats().pack()) == 10 * 4
    assert m.Nack(1, 2, 99).code_name == "UNKNOWN_NACK_99"


@pytest.mark.parametrize(
    "message",
    [
        m.Sample(0x02 | m.SAMPLE_LABELLED, 1, 1, b"\x00"),  # reserved SAMPLE flag
        m.Sample(0, 4, 1, b"\x00"),  # a label on an unlabelled SAMPLE
        m.Infer(0x04, 0, 1, b"\x00"),  # reserved INFER flag
        m.Infer(0, 1, 1, b"\x00"),  # INFER's zero byte
        m.Train(1, reserved=1),
        m.Train(1, flags=0x02),
        m.Ack(1, m.MsgType.HELLO, 1, 0),
        m.Clear(0x04),
        m.UpdateReady(9, 4, 455, 16, 0x01, 2**-12, 1.0, 2.0, 910, 0xDEADBEEF, 1.5),
    ],
    ids=lambda msg: msg.TYPE.name,
)
def test_reserved_payload_bits_are_refused_on_receipt(message: m.Message) -> None:
    with pytest.raises(m.MessageError, match=r"reserved|unused|zero byte"):
        m.parse_payload(message.TYPE, message.pack())
