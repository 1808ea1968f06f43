"""DeviceClient: talk to one fedhead device over any transport (PROTOCOL.md).

Typical use::

    from tools.link.client import DeviceClient
    with DeviceClient.open("/dev/pts/5") as dev:      # or "socket://127.0.0.1:5555"
        info = dev.hello()                             # Info: D, C, head_sha256, ...
        dev.install_head(w, b, version=1)              # chunked, acknowledged, retried
        dev.sample(window, label=3)                    # Result
        dev.train(Train(round=1, lr=0.05, clip=1.0))   # ACK; the device trains
        update = dev.fetch_update(1, timeout=30)       # FetchedUpdate (q values + metadata)

Every request is retried on timeout or when the device reports a damaged frame
(NACK BAD_CRC/BAD_FRAME with ack_seq 0). Errors: `NackError` (with the code name),
`LinkTimeoutError`, `PortGoneError`. Unsolicited LOG and INFO frames go to `on_log` / `on_info`;
unsolicited UPDATE_READY frames are kept until `wait_update_ready` asks for them.
A client is used from one thread at a time.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tools.link import crypto
from tools.link import messages as m
from tools.link.auth import PROTECTED_REQUESTS, SEALED_UPDATES, AuthError, LinkSession
from tools.link.errors import LinkTimeoutError, NackError, PortGoneError, ProtocolError
from tools.link.frame import (
    BROADCAST_DEVICE,
    FLAG_AUTH,
    FLAG_REPLY,
    MAX_PAYLOAD,
    Frame,
    StreamDecoder,
    crc32,
    encode_frame,
)
from tools.link.messages import MsgType, NackCode
from tools.link.transport import Transport, open_transport

CHUNK_BYTES = MAX_PAYLOAD - 8  # MODEL_CHUNK / UPDATE_CHUNK carry u32 version/round + u32 offset
_SESSION_LOST = {NackCode.AUTH_TAG, NackCode.AUTH_KEY, NackCode.NO_IDENTITY}
RESEND_CODES = {NackCode.BAD_CRC, NackCode.BAD_FRAME}
# wait_ready: first wait for an answer to HELLO, doubled after each silent try up to the max.
BOOT_FIRST_WAIT = 0.25
BOOT_MAX_WAIT = 2.0
# After a NACK for a damaged frame, how long the reply may still come before the request is
# sent again (the NACK may be about earlier noise; the device answers in order).
DAMAGE_GRACE = 0.1
_Q_DTYPES = {8: "<i1", 16: "<i2", 32: "<i4"}


@dataclass(frozen=True)
class FetchedUpdate:
    """A complete, CRC-checked update as the device sent it."""

    ready: m.UpdateReady
    data: bytes
    device_id: int

    @property
    def q(self) -> np.ndarray:
        """The signed integer values (W row-major D×C, then b), int64."""
        return np.frombuffer(self.data, dtype=_Q_DTYPES[self.ready.bits]).astype(np.int64)

    @property
    def delta(self) -> np.ndarray:
        """q · scale as float64 (the device's Δ after clipping, noise and rounding)."""
        return self.q.astype(np.float64) * float(np.float32(self.ready.scale))


@dataclass
class LinkCounters:
    """What the host saw on this link (the device keeps its own STATS)."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    nacks: int = 0
    stale_replies: int = 0
    update_crc_errors: int = 0
    auth_rejected: int = 0  # device frames dropped: forged, replayed, or plain where sealed


def head_blob(w: np.ndarray, b: np.ndarray) -> bytes:
    """PROTOCOL.md §3: f32 W[D][C] row-major, then f32 b[C]."""
    return (
        np.ascontiguousarray(w, dtype="<f4").tobytes()
        + np.ascontiguousarray(b, dtype="<f4").tobytes()
    )


def head_sha256(w: np.ndarray, b: np.ndarray) -> bytes:
    return hashlib.sha256(head_blob(w, b)).digest()


def head_bound_error(w: np.ndarray, b: np.ndarray) -> str | None:
    """Why the device would refuse this head at MODEL_COMMIT (twin of fc_params_within_bound
    with FC_HEAD_MAX_ABS / FC_HEAD_MAX_L2), or None when it is within the bound."""
    values = np.concatenate([np.ravel(w), np.ravel(b)]).astype(np.float32).astype(np.float64)
    if not np.all(np.isfinite(values)):
        return "a value is NaN or infinite"
    largest = float(np.max(np.abs(values)))
    if largest > m.HEAD_MAX_ABS:
        return f"|value| {largest:g} > HEAD_MAX_ABS {m.HEAD_MAX_ABS}"
    norm = float(np.sqrt(np.sum(values * values)))
    if norm > m.HEAD_MAX_L2:
        return f"L2 norm {norm:g} > HEAD_MAX_L2 {m.HEAD_MAX_L2}"
    return None


@dataclass
class DeviceClient:
    """Request/response client for one device. See the module docstring for an example."""

    transport: Transport
    timeout: float = 2.0  # seconds to wait for each answer
    retries: int = 5  # extra attempts after the first
    on_log: Callable[[m.Log, int], None] | None = None  # (message, device_id)
    on_info: Callable[[m.Info, int], None] | None = None
    on_unframed: Callable[[bytes], None] | None = None
    device_id: int = BROADCAST_DEVICE  # learnt from the first frame the device sends
    info: m.Info | None = None
    counters: LinkCounters = field(default_factory=LinkCounters)
    _seq: int = 0
    _decoder: StreamDecoder = field(init=False)
    _pending: list[Frame] = field(default_factory=list)
    _ready: dict[int, m.UpdateReady] = field(default_factory=dict)
    session: LinkSession | None = None  # set by start_session: protected traffic is sealed
    _server_secret: bytes | None = None

    def __post_init__(self) -> None:
        self._decoder = StreamDecoder(on_unframed=self._unframed)

    @classmethod
    def open(cls, url: str, open_timeout: float = 5.0, **kwargs: object) -> DeviceClient:
        """Open a device by pyserial URL; keyword arguments go to the dataclass fields."""
        return cls(open_transport(url, open_timeout=open_timeout), **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- requests ---------------------------------------------------------------------------

    def hello(self) -> m.Info:
        """HELLO → INFO. Also refreshes `self.info` and `self.device_id`."""
        frame = self.request(m.Hello(), expect=MsgType.INFO)
        self.info = m.Info.unpack(frame.payload)
        return self.info

    def wait_ready(self, within: float = 20.0) -> m.Info:
        """HELLO until the device answers: for a board that is still starting.

        A board just powered, reset or flashed (or reset by the port opening, as many ESP32
        dev boards are) prints boot text and answers nothing for a while, about a second for
        an ESP32. Sends HELLO and waits BOOT_FIRST_WAIT s, doubling the wait after each silent
        try up to BOOT_MAX_WAIT s. An unsolicited boot INFO (or a reply to an earlier HELLO)
        says the device is up; the wait then ends with the reply to the latest HELLO: the device
        handles its input in order, so everything sent before (and any NACK for bytes cut during
        the boot) has been answered by then and the next request starts on a quiet line.
        Raises LinkTimeoutError after `within` s."""
        deadline = time.monotonic() + within
        wait = BOOT_FIRST_WAIT
        self.counters.requests += 1
        for attempt in itertools.count():
            if attempt:
                self.counters.retries += 1
            seq = self._next_seq()
            self.transport.write(encode_frame(Frame(MsgType.HELLO, b"", self.device_id, seq)))
            if self._await_info_reply(seq, deadline, wait):
                return self.info
            if time.monotonic() >= deadline:
                raise LinkTimeoutError(
                    f"{self.transport.url}: no INFO within {within} s ({attempt + 1} HELLOs); "
                    "is the board powered and running fedhead? `invoke build-flash --board "
                    "esp32` flashes it, `invoke monitor --port …` shows what it prints"
                )
            wait = min(2 * wait, BOOT_MAX_WAIT)
        raise AssertionError("unreachable")

    def _await_info_reply(self, seq: int, deadline: float, wait: float) -> bool:
        """True once the INFO reply to HELLO `seq` arrived (self.info holds it). Any other INFO
        means the device is up: keep waiting for this reply up to `self.timeout` longer."""
        answer_by = min(deadline, time.monotonic() + wait)
        while True:
            frame = self._await(lambda f: f.type == MsgType.INFO, answer_by)
            if frame is None:
                return False
            info = _safe_unpack(m.Info, frame)
            if frame.seq == seq and frame.flags & FLAG_REPLY and info is not None:
                self.info = info
                return True
            answer_by = min(deadline, max(answer_by, time.monotonic() + self.timeout))

    def install_head(self, w: np.ndarray, b: np.ndarray, version: int) -> None:
        """Send a global head (MODEL_BEGIN, chunks, MODEL_COMMIT); returns once committed."""
        problem = head_bound_error(w, b)
        if problem is not None:
            raise ValueError(f"the device would refuse this head (NACK HEAD_NORM): {problem}")
        blob = head_blob(w, b)
        digest = hashlib.sha256(blob).digest()
        d, c = np.shape(w)
        self.request(m.ModelBegin(version, len(blob), d, c, digest), expect=MsgType.ACK)
        for offset in range(0, len(blob), CHUNK_BYTES):
            chunk = blob[offset : offset + CHUNK_BYTES]
            self.request(m.ModelChunk(version, offset, chunk), expect=MsgType.ACK)
        try:
            self.request(m.ModelCommit(version), expect=MsgType.ACK)
        except NackError as exc:
            # A commit whose ACK was lost is retried and then refused (nothing left to commit):
            # the head counts as installed only if the device now reports its hash.
            if exc.code != NackCode.BAD_STATE or self.hello().head_sha256 != digest:
                raise

    def sample(self, window: bytes | np.ndarray, label: int | None = None) -> m.Result:
        """SAMPLE: run the window; with a label the device stores (embedding, label).

        Replay-profile boards only: production boards answer NACK UNSUPPORTED. Retries resend
        the same frame (same seq): the device answers a retried labelled SAMPLE with the RESULT
        it already sent and stores the example once (PROTOCOL.md, SAMPLE retries)."""
        data = _window_bytes(window)
        flags = m.SAMPLE_LABELLED if label is not None else 0
        frame = self.request(
            m.Sample(flags, label or 0, len(data), data), expect=MsgType.RESULT, same_seq=True
        )
        return m.Result.unpack(frame.payload)

    def infer(
        self, window: bytes | np.ndarray, use_global: bool = False, want_embedding: bool = False
    ) -> m.Result:
        """INFER: prediction of the personal head (or the global one) for a window.
        Replay-profile boards only: production boards answer NACK UNSUPPORTED."""
        data = _window_bytes(window)
        flags = (m.INFER_USE_GLOBAL if use_global else 0) | (
            m.INFER_WANT_EMBEDDING if want_embedding else 0
        )
        frame = self.request(m.Infer(flags, 0, len(data), data), expect=MsgType.RESULT)
        return m.Result.unpack(frame.payload)

    def train(self, params: m.Train) -> None:
        """TRAIN: the device ACKs at once and later sends UPDATE_READY (see fetch_update).
        The same round again yields the same update; the device's policy and budget may
        refuse it (NACK POLICY_*, BUDGET, ROUND_OLD: PROTOCOL.md §2.4)."""
        self._ready.pop(params.round, None)
        self.request(params, expect=MsgType.ACK)

    def stats(self) -> m.Stats:
        return m.Stats.unpack(self.request(m.StatsGet(), expect=MsgType.STATS).payload)

    def clear(self, what: int = m.CLEAR_EXAMPLES | m.CLEAR_PERSONAL_HEAD) -> None:
        self.request(m.Clear(what), expect=MsgType.ACK)

    def reset(self, wait_boot: float = 0.0) -> m.Info | None:
        """RESET; with wait_boot > 0, wait that long for the boot INFO and return it."""
        self.request(m.Reset(), expect=MsgType.ACK, retries=0)
        if wait_boot <= 0:
            return None
        self.info = None
        frame = self._await(lambda f: f.type == MsgType.INFO, time.monotonic() + wait_boot)
        if frame is None:
            raise LinkTimeoutError(
                f"{self.transport.url}: no INFO within {wait_boot} s after RESET"
            )
        if self._server_secret is not None:
            self.start_session(self._server_secret)  # the device drew a new session nonce
        return self.info

    def seed(self, seed: bytes) -> None:
        """SEED (replay-profile builds only; production boards NACK UNSUPPORTED)."""
        self.request(m.Seed(seed), expect=MsgType.ACK)

    # ---- enrollment and the authenticated link (PROTOCOL.md §6) ------------------------------

    def enroll_info(self) -> m.EnrollInfo:
        """ENROLL_GET → the device's public key, enrollment, session nonce, auth counters."""
        frame = self.request(m.EnrollGet(), expect=MsgType.ENROLL_INFO)
        return m.EnrollInfo.unpack(frame.payload)

    def enroll(self, server_public: bytes, force: bool = False) -> int:
        """ENROLL_SET: the device records the server's key (trust on first use); returns the
        key_id. Re-enrolling with another key needs force (see PROTOCOL.md §6.2)."""
        flags = m.ENROLL_FORCE if force else 0
        return m.Ack.unpack(
            self.request(m.EnrollSet(server_public, flags), expect=MsgType.ACK).payload
        ).value

    def start_session(self, server_secret: bytes) -> LinkSession:
        """Derive this boot's link keys; from now on protected requests go out sealed and
        device frames are accepted only when they authenticate. The device must be enrolled
        with this server's key."""
        info = self.enroll_info()
        self.session = session_from_enroll_info(
            server_secret, self.device_id, info, where=self.transport.url
        )
        self._server_secret = server_secret
        return self.session

    # ---- updates ----------------------------------------------------------------------------

    def wait_update_ready(
        self, round_id: int, timeout: float, poll_every: float = 1.0
    ) -> m.UpdateReady:
        """Wait for UPDATE_READY of `round_id`; asks again every `poll_every` s in case the
        unsolicited one was lost. Raises LinkTimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            if round_id in self._ready:
                return self._ready[round_id]
            now = time.monotonic()
            if now >= deadline:
                raise LinkTimeoutError(
                    f"{self.transport.url}: no UPDATE_READY for round {round_id} within {timeout} s"
                )
            self._await(lambda f: f.type == MsgType.UPDATE_READY, min(deadline, now + poll_every))
            if round_id not in self._ready and time.monotonic() < deadline:
                self._poll_ready(round_id)

    def fetch_update(
        self, round_id: int, timeout: float = 30.0, max_len: int = CHUNK_BYTES
    ) -> FetchedUpdate:
        """Wait for the update of `round_id`, pull every chunk, check its CRC-32."""
        deadline = time.monotonic() + timeout
        ready = self.wait_update_ready(round_id, timeout)
        for _attempt in range(self.retries + 1):
            data = self._pull_chunks(ready, max_len)
            if crc32(data) == ready.crc32:
                return FetchedUpdate(ready, data, self.device_id)
            self.counters.update_crc_errors += 1
            # The device may hold a newer update than the UPDATE_READY we kept (a TRAIN whose
            # ACK was lost was sent again and trained again): ask for its header afresh.
            self._ready.pop(round_id, None)
            self._poll_ready(round_id)
            ready = self.wait_update_ready(round_id, max(0.0, deadline - time.monotonic()))
        raise LinkTimeoutError(
            f"{self.transport.url}: update of round {round_id} failed its CRC "
            f"{self.retries + 1} times"
        )

    def _pull_chunks(self, ready: m.UpdateReady, max_len: int) -> bytes:
        data = bytearray()
        while len(data) < ready.total_len:
            want = min(max_len, ready.total_len - len(data))
            frame = self.request(
                m.UpdateGet(ready.round, len(data), want), expect=MsgType.UPDATE_CHUNK
            )
            chunk = m.UpdateChunk.unpack(frame.payload)
            if chunk.round != ready.round or chunk.offset != len(data) or not chunk.data:
                raise ProtocolError(
                    f"UPDATE_CHUNK round {chunk.round} offset {chunk.offset}, "
                    f"asked round {ready.round} offset {len(data)}"
                )
            data += chunk.data[:want]
        return bytes(data)

    def _poll_ready(self, round_id: int) -> None:
        try:
            frame = self.request(
                m.UpdateGet(round_id, m.UPDATE_GET_READY_OFFSET, 0),
                expect=MsgType.UPDATE_READY,
                retries=0,
            )
        except (LinkTimeoutError, NackError):
            return  # not ready yet (NO_DATA / BAD_STATE) or the poll was lost: keep waiting
        self._remember_ready(frame)

    # ---- request/response core ----------------------------------------------------------------

    def request(
        self,
        message: m.Message,
        expect: MsgType,
        retries: int | None = None,
        same_seq: bool = False,
    ) -> Frame:
        """Send `message` and return the reply frame of type `expect` (REPLY, same seq).

        With `same_seq`, retries resend the identical frame (the device recognises the retry).

        Raises NackError when the device refuses, LinkTimeoutError when nothing valid comes back
        after the retries, PortGoneError when the port disappears."""
        attempts = (self.retries if retries is None else retries) + 1
        self.counters.requests += 1
        seq = 0
        renewed = False
        for attempt in range(attempts + 1):  # + 1: one resend after renewing the session
            if attempt == attempts and not renewed:
                break
            if attempt:
                self.counters.retries += 1
            if attempt == 0 or not same_seq:
                seq = self._next_seq()
            # a fresh counter on every attempt, also when the seq stays the same
            frame = request_frame(message, self.device_id, seq, self.session)
            sealed = bool(frame.flags & FLAG_AUTH)
            self.transport.write(encode_frame(frame))
            try:
                reply = self._await_reply(seq, message.TYPE, expect)
            except NackError as err:
                # The device restarted (new session nonce, counters from 0): renew once.
                if sealed and not renewed and err.code in _SESSION_LOST and self._server_secret:
                    self.start_session(self._server_secret)
                    renewed = True
                    continue
                raise
            if reply is not None:
                return reply
            self.counters.timeouts += 1
        raise LinkTimeoutError(
            f"{self.transport.url}: no answer to {message.TYPE.name} after "
            f"{attempts} attempts of {self.timeout} s; is the firmware running?"
        )

    def _await_reply(self, seq: int, request: MsgType, expect: MsgType) -> Frame | None:
        """The reply to `seq`, or None to resend (timeout, or the device saw a damaged frame).

        A NACK with ack_seq 0 (a frame the device could not read) may be about this request or
        a leftover from noise before it (bytes cut during a boot). The device answers in order,
        so the reply, if it comes, comes right behind such NACKs: wait DAMAGE_GRACE s more for it
        before resending."""

        def answers(frame: Frame) -> bool:
            if frame.type == MsgType.NACK:
                nack = _safe_unpack(m.Nack, frame)
                return nack is not None and (
                    nack.ack_seq == seq or (nack.ack_seq == 0 and nack.code in RESEND_CODES)
                )
            return frame.seq == seq and bool(frame.flags & FLAG_REPLY)

        deadline = time.monotonic() + self.timeout
        damaged = False
        while True:
            frame = self._await(answers, deadline)
            if frame is None:
                return None
            if frame.type != MsgType.NACK:
                break
            nack = m.Nack.unpack(frame.payload)
            self.counters.nacks += 1
            if nack.ack_seq != 0 or nack.code not in RESEND_CODES:
                raise NackError(request.name, nack.code, nack.code_name, nack.detail)
            if not damaged:
                damaged = True
                deadline = min(deadline, time.monotonic() + DAMAGE_GRACE)
        if frame.type != expect:
            raise ProtocolError(
                f"{request.name} answered with {_type_name(frame.type)}, expected {expect.name}"
            )
        return frame

    def _await(self, wanted: Callable[[Frame], bool], deadline: float) -> Frame | None:
        """Read frames until one satisfies `wanted` (returned) or the deadline passes (None)."""
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                self._dispatch(frame)
                if wanted(frame):
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            data = self.transport.read(min(remaining, 0.2))
            if data:
                self._pending.extend(
                    f for f in map(self._authenticate, self._decoder.feed(data)) if f is not None
                )

    def _authenticate(self, frame: Frame) -> Frame | None:
        """The frame as the device meant it (decrypted), or None when it must be dropped: it
        fails authentication, or it comes plain where an enrolled device always seals."""
        return authenticate_frame(frame, self.session, self.counters)

    def _dispatch(self, frame: Frame) -> None:
        """Route LOG/INFO to the callbacks and remember every UPDATE_READY (even late ones)."""
        if self.device_id == BROADCAST_DEVICE and frame.device_id != BROADCAST_DEVICE:
            self.device_id = frame.device_id
        if frame.type == MsgType.LOG and self.on_log is not None:
            self.on_log(_safe_unpack(m.Log, frame), frame.device_id)
        elif frame.type == MsgType.INFO:
            info = _safe_unpack(m.Info, frame)
            if info is not None:
                self.info = info
                if self.on_info is not None and not frame.flags & FLAG_REPLY:
                    self.on_info(info, frame.device_id)
        elif frame.type == MsgType.UPDATE_READY:
            self._remember_ready(frame)

    def _remember_ready(self, frame: Frame) -> None:
        ready = _safe_unpack(m.UpdateReady, frame)
        if ready is not None:
            self._ready[ready.round] = ready

    def _unframed(self, data: bytes) -> None:
        if self.on_unframed is not None:
            self.on_unframed(data)

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1  # 1..65535: ack_seq 0 means "header not trusted"
        return self._seq


def session_from_enroll_info(
    server_secret: bytes,
    device_id: int,
    info: m.EnrollInfo,
    device_public: bytes | None = None,
    where: str = "",
) -> LinkSession:
    """This boot's LinkSession from the device's ENROLL_INFO. `device_public`, when given, is
    the key the server recorded at enrollment: a relayed ENROLL_INFO (Flower gateway) is not
    trusted to name the device's key, since a relay announcing its own key would otherwise
    get a session with the server."""
    where = f"{where}: " if where else ""
    if not info.enrolled or info.server_public != crypto.x25519_public(server_secret):
        raise ProtocolError(
            f"{where}device {device_id:#x} is not enrolled with this server's key: run "
            "`invoke provision --port ...` first"
        )
    if device_public is not None and info.device_public != device_public:
        raise ProtocolError(
            f"{where}device {device_id:#x} announces another key than the one enrolled "
            f"({info.device_public[:8].hex()}…, enrolled {device_public[:8].hex()}…)"
        )
    session = LinkSession.derive(
        server_secret, info.device_public, device_id, info.session_nonce, info.key_id
    )
    # Another host process may have used this boot session: go on from its counters.
    session.tx_counter, session.rx_counter = info.rx_counter, info.tx_counter
    return session


def request_frame(
    message: m.Message, device_id: int, seq: int, session: LinkSession | None
) -> Frame:
    """The host->device frame of `message`: sealed (a fresh counter) when a session runs and
    the request is one an enrolled device takes only authenticated (PROTOCOL.md §6)."""
    frame = Frame(message.TYPE, message.pack(), device_id, seq)
    if session is not None and message.TYPE in PROTECTED_REQUESTS:
        return session.seal(frame)
    return frame


def authenticate_frame(
    frame: Frame, session: LinkSession | None, counters: LinkCounters
) -> Frame | None:
    """A device frame as the device meant it (decrypted), or None when it must be dropped: it
    fails authentication, or it comes plain where an enrolled device always seals."""
    if session is None:
        return None if frame.flags & FLAG_AUTH else frame
    try:
        if frame.flags & FLAG_AUTH:
            return session.open(frame)
        if frame.type in SEALED_UPDATES:
            raise AuthError("plain", f"plain {MsgType(frame.type).name}")
        ack = _safe_unpack(m.Ack, frame) if frame.type == MsgType.ACK else None
        if ack is not None and ack.ack_type in PROTECTED_REQUESTS:
            raise AuthError("plain", "plain ACK of a protected request")
    except AuthError:
        counters.auth_rejected += 1
        return None
    return frame


def _safe_unpack(cls: type, frame: Frame):
    try:
        return cls.unpack(frame.payload)
    except m.MessageError:
        return None


def _window_bytes(window: bytes | np.ndarray) -> bytes:
    if isinstance(window, bytes | bytearray):
        return bytes(window)
    return np.ascontiguousarray(window, dtype=np.int8).tobytes()


def _type_name(msg_type: int) -> str:
    try:
        return MsgType(msg_type).name
    except ValueError:
        return f"type 0x{msg_type:02x}"


__all__ = [
    "DeviceClient",
    "FetchedUpdate",
    "LinkTimeoutError",
    "NackError",
    "PortGoneError",
    "head_blob",
    "head_sha256",
]
