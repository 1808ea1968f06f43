"""Readable one-line renderings of frames, shared by `invoke monitor` and the PlatformIO filter."""

from __future__ import annotations

from collections.abc import Callable

from tools.link import messages as m
from tools.link.frame import FLAG_REPLY, Frame, StreamDecoder
from tools.link.messages import MsgType


def render_frame(frame: Frame) -> str:
    """`[dev 0x00000007 #12 LOG info] text`-style line for one frame (no trailing newline)."""
    try:
        kind = MsgType(frame.type).name
    except ValueError:
        kind = f"type 0x{frame.type:02x}"
    reply = " reply" if frame.flags & FLAG_REPLY else ""
    head = f"[dev 0x{frame.device_id:08x} #{frame.seq}{reply} {kind}]"
    try:
        body = _body(frame)
    except m.MessageError as exc:
        body = f"malformed payload: {exc}"
    return f"{head} {body}".rstrip()


def _body(frame: Frame) -> str:
    message = m.parse_payload(frame.type, frame.payload)
    if isinstance(message, m.Log):
        return f"{message.level_name}: {message.text.decode('utf-8', 'replace').rstrip()}"
    if isinstance(message, m.Info):
        return (
            f"board={message.board_name} fw={message.fw_version >> 8}.{message.fw_version & 255}"
            f" D={message.embed_dim} C={message.num_classes} head_v={message.head_version}"
            f" head={message.head_sha256.hex()[:12]} model={message.model_sha256.hex()[:12]}"
            f" examples={message.examples}/{message.capacity} free_ram={message.free_ram}"
            f" profile={message.profile_name} ε={message.epsilon_spent:.3g}"
            f"/{message.epsilon_budget:.3g} releases={message.releases}"
        )
    if isinstance(message, m.Nack):
        return f"{message.code_name} for #{message.ack_seq} ({_name(message.ack_type)})"
    if isinstance(message, m.Ack):
        return f"#{message.ack_seq} ({_name(message.ack_type)}) value={message.value}"
    if isinstance(message, m.UpdateReady):
        return (
            f"round={message.round} bits={message.bits} scale={message.scale:.3g} "
            f"clip={message.clip:.3g} noise_std={message.noise_std:.3g} "
            f"ε={message.epsilon_spent:.3g}"
        )
    if isinstance(message, m.ModelChunk | m.UpdateChunk):
        first = message.head_version if isinstance(message, m.ModelChunk) else message.round
        return f"{first} offset={message.offset} {len(message.data)} B"
    if isinstance(message, m.Sample):
        return f"flags={message.flags} label={message.label} n={message.n}"
    if isinstance(message, m.Result):
        return (
            f"predicted={message.predicted} head={'personal' if message.head else 'global'} "
            f"stored={message.stored} backbone_us={message.backbone_us}"
        )
    text = ", ".join(f"{k}={v}" for k, v in vars(message).items())
    return text


def _name(msg_type: int) -> str:
    try:
        return MsgType(msg_type).name
    except ValueError:
        return f"0x{msg_type:02x}"


class MonitorDecoder:
    """Bytes in, display text out: frames as lines, unframed bytes as they came (decoded)."""

    def __init__(self) -> None:
        self._out: list[str] = []
        self._decoder = StreamDecoder(on_unframed=self._text)
        self._at_line_start = True

    def feed(self, data: bytes) -> str:
        # One delimiter at a time, so text and frames come out in the order they arrived.
        for segment in data.split(b"\x00")[:-1]:
            for frame in self._decoder.feed(segment + b"\x00"):
                self._line(render_frame(frame))
        self._decoder.feed(data[data.rfind(b"\x00") + 1 :])
        self._decoder.flush_unframed()
        out, self._out = "".join(self._out), []
        return out

    def _text(self, block: bytes) -> None:
        text = block.decode("utf-8", "replace")
        self._out.append(text)
        self._at_line_start = text.endswith("\n")

    def _line(self, line: str) -> None:
        self._out.append(("" if self._at_line_start else "\n") + line + "\n")
        self._at_line_start = True


def run_monitor(
    url: str, write: Callable[[str], object], stop: Callable[[], bool], baudrate: int = 115200
) -> None:
    """Read `url` until `stop()` is true, writing display text with `write`."""
    from tools.link.transport import open_transport

    decoder = MonitorDecoder()
    with open_transport(url, baudrate) as transport:
        while not stop():
            data = transport.read(0.1)
            if data:
                write(decoder.feed(data))
