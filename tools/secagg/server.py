"""The server's side of one SecAgg round over enrolled devices (PROTOCOL.md §7).

    keys      SECAGG_SETUP → each device's ephemeral (c_pk, s_pk)              U1 answered
    shares    SECAGG_PEERS(U1) → each device's encrypted Shamir shares          U2 answered
    forward   SECAGG_SHARES_IN: each device gets the shares U2 sent it
    mask      SECAGG_MASK(U2) → y_u = q_u + PRG(b_u) + Σ± PRG(s_uv) mod 2^b     U3 answered
    unmask    SECAGG_UNMASK(U3 survivors, U2∖U3 dropped) → b-shares of survivors,
              s_sk-shares of the dropped                                          R answered
    sum       Σ_{U3} y − Σ_{U3} PRG(b_v) − Σ_{dropped v} Σ_{u∈U3} ±PRG(s_uv) = Σ_{U3} q

A device that fails any step (timeout, vanished port, NACK) has dropped out. Fewer than t
devices at any step aborts the round with `SecAggAbortError` and releases nothing. The server sees
individual y only, each uniform mod 2^b; it learns Σ q over U3 and nothing else, as long as
it follows the protocol (PRIVACY.md: what a malicious server can do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tools.link import crypto
from tools.link.client import DeviceClient
from tools.link.errors import LinkError
from tools.link.messages import MessageError, MsgType
from tools.secagg import masking, shamir, wire

MASK_CHUNK = 1024
MAX_PEERS = 16  # FC_SECAGG_MAX_PEERS of fedcore/secagg.h


class SecAggAbortError(RuntimeError):
    """Too few devices left: the round ends and nothing is released."""


@dataclass
class SecAggResult:
    round: int
    bits_mod: int
    total: np.ndarray  # Σ q over `survivors`, int64
    survivors: list[int]  # U3: whose inputs are in the sum
    dropped: list[int]  # U2 ∖ U3: recovered from their s_sk shares
    responders: list[int]  # answered the unmask step
    uploads: dict[int, bytes] = field(default_factory=dict)  # y as the server saw it
    bytes_up: dict[int, int] = field(default_factory=dict)  # SecAgg payload bytes per device
    bytes_down: dict[int, int] = field(default_factory=dict)


def _need(count: int, t: int, stage: str) -> None:
    if count < t:
        raise SecAggAbortError(
            f"SecAgg {stage}: {count} devices left, threshold t = {t}; round aborted"
        )


Ask = tuple[Any, MsgType]  # a SecAgg request (tools/secagg/wire.py) and its reply's type


class Exchange(Protocol):
    """How one SecAgg step reaches the cohort: each device gets its requests in order (each
    answered before the next) and every device is asked at once where the transport allows."""

    def ask(self, asks: Mapping[int, Sequence[Ask]]) -> dict[int, list[bytes]]:
        """The reply payloads of every device that answered all its requests; a device missing
        from the result has dropped out (timeout, vanished port, NACK)."""
        ...


@dataclass
class ClientExchange:
    """Serial DeviceClients on this machine (the built-in engine), asked one after another."""

    clients: Mapping[int, DeviceClient]

    def ask(self, asks: Mapping[int, Sequence[Ask]]) -> dict[int, list[bytes]]:
        answers: dict[int, list[bytes]] = {}
        for device, requests in asks.items():
            client = self.clients[device]
            try:
                answers[device] = [
                    client.request(message, expect=expect, retries=1).payload
                    for message, expect in requests
                ]
            except LinkError:
                continue  # dropped out
        return answers


@dataclass
class SecAggRound:
    """One round over `clients`: DeviceClients by device id, or the device ids of a cohort
    reached through `exchange` (a Flower gateway relay, tools/flower/server_app.py)."""

    clients: Mapping[int, DeviceClient] | Sequence[int]
    round: int
    threshold: int
    q_bits: int
    n_params: int
    on_stage: Callable[[str], None] | None = None  # tests: called after "forward", "mask"
    bits_mod: int = 0  # 0: the modulus rule (tests may force a smaller one to see it refused)
    exchange: Exchange | None = None  # None: ClientExchange(clients)
    result_bytes_up: dict[int, int] = field(default_factory=dict)
    result_bytes_down: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.exchange is None:
            assert isinstance(self.clients, Mapping), "give DeviceClients or an exchange"
            self.exchange = ClientExchange(self.clients)
        n = len(self.clients)
        self.bits_mod = self.bits_mod or masking.min_bits(self.q_bits, n)
        if self.bits_mod > 32:
            raise SecAggAbortError(
                f"{n} devices × {self.q_bits}-bit q need {self.bits_mod} modulus bits > 32: "
                "use a smaller q width (--bits) or smaller cohorts"
            )
        if n > MAX_PEERS:
            raise SecAggAbortError(
                f"a SecAgg round of {n} devices: the firmware takes at most {MAX_PEERS} peers "
                "(FC_SECAGG_MAX_PEERS); select fewer devices per round (--cohort)"
            )
        if not (2 * self.threshold > n and self.threshold <= n):
            raise SecAggAbortError(
                f"threshold t = {self.threshold} must satisfy n/2 < t <= n = {n}"
            )

    def _step(
        self,
        devices: Iterable[int],
        requests: Callable[[int], list[Ask]],
        parse: Callable[[int, list[bytes]], object],
    ) -> dict[int, object]:
        """One protocol step for every device of `devices`, as one exchange; a device whose
        answer does not parse has dropped out like a silent one."""
        asks = {device: requests(device) for device in devices}
        assert self.exchange is not None
        answers: dict[int, object] = {}
        for device, payloads in self.exchange.ask(asks).items():
            down = sum(len(message.pack()) for message, _ in asks[device])
            self.result_bytes_down[device] = self.result_bytes_down.get(device, 0) + down
            up = sum(len(payload) for payload in payloads)
            self.result_bytes_up[device] = self.result_bytes_up.get(device, 0) + up
            try:
                answers[device] = parse(device, payloads)
            except (LinkError, MessageError):
                continue
        return answers

    def _stage(self, name: str) -> None:
        if self.on_stage is not None:
            self.on_stage(name)

    def run(self) -> SecAggResult:
        n, t, r = len(self.clients), self.threshold, self.round
        keys = self._step(
            self.clients,
            lambda d: [(wire.Setup(r, n, t, self.bits_mod), MsgType.SECAGG_KEYS)],
            lambda d, got: wire.parse_keys(got[0])[1:],
        )
        _need(len(keys), t, "keys")
        u1 = sorted(keys)
        peers = tuple((d, *keys[d]) for d in u1)
        x_of = {d: i + 1 for i, d in enumerate(u1)}
        sent = self._step(
            u1,
            lambda d: [(wire.Peers(r, peers), MsgType.SECAGG_SHARES)],
            lambda d, got: wire.parse_shares(got[0])[1],
        )
        _need(len(sent), t, "shares")
        u2 = sorted(sent)
        inbox = {d: tuple((s, ct) for s in u2 for to, ct in sent[s] if to == d) for d in u2}
        forwarded = self._step(
            u2, lambda d: [(wire.SharesIn(r, inbox[d]), MsgType.ACK)], lambda d, got: got
        )
        _need(len(forwarded), t, "forward")
        self._stage("forward")
        uploads = self._step(u2, lambda d: self._mask_requests(tuple(u2)), self._masked_input)
        _need(len(uploads), t, "mask")
        self._stage("mask")
        u3 = sorted(uploads)
        dropped = [d for d in u2 if d not in uploads]
        entries = tuple((d, wire.SURVIVOR if d in uploads else wire.DROPPED) for d in u2)
        reveals = self._step(
            u3,
            lambda d: [(wire.Unmask(r, entries), MsgType.SECAGG_REVEAL)],
            lambda d, got: wire.parse_reveal(got[0])[1],
        )
        _need(len(reveals), t, "unmask")
        total = self._unmask(uploads, reveals, x_of, keys, u3, dropped)
        return SecAggResult(
            r, self.bits_mod, total, u3, dropped, sorted(reveals), dict(uploads),
            dict(self.result_bytes_up), dict(self.result_bytes_down),
        )  # fmt: skip

    @property
    def masked_len(self) -> int:
        return (self.n_params * self.bits_mod + 7) // 8

    def _mask_requests(self, u2: tuple[int, ...]) -> list[Ask]:
        """Every chunk of y at once: the device answers min(MASK_CHUNK, what is left)."""
        return [
            (wire.Mask(self.round, offset, MASK_CHUNK, u2), MsgType.SECAGG_MASKED)
            for offset in range(0, self.masked_len, MASK_CHUNK)
        ]

    def _masked_input(self, device: int, payloads: list[bytes]) -> bytes:
        data = bytearray()
        for payload in payloads:
            round_id, offset, total, bits, chunk = wire.parse_masked(payload)
            if (round_id, offset, bits) != (self.round, len(data), self.bits_mod) or not chunk:
                raise LinkError(f"device {device:#x}: SECAGG_MASKED out of step")
            if total != self.masked_len:
                raise LinkError(f"device {device:#x}: masked input of {total} B")
            data += chunk
        if len(data) != self.masked_len:
            raise LinkError(f"device {device:#x}: masked input of {len(data)} B")
        return bytes(data)

    def _unmask(self, uploads, reveals, x_of, keys, u3, dropped) -> np.ndarray:
        bits, n = self.bits_mod, self.n_params
        modulus = np.uint64(1 << bits)
        total = np.zeros(n, dtype=np.uint64)
        for y in uploads.values():
            total = (total + masking.unpack(y, n, bits)) % modulus
        shares: dict[int, dict[int, bytes]] = {}
        for responder, entries in reveals.items():
            for device, kind, share in entries:
                if (kind == wire.DROPPED) != (device in dropped):
                    raise SecAggAbortError(f"device {responder:#x} revealed the wrong share kind")
                shares.setdefault(device, {})[x_of[responder]] = share
        for v in u3:  # survivors: remove their self masks
            b_seed = shamir.combine(shares[v])
            total = (total - masking.prg(b_seed, n, bits)) % modulus
        for v in dropped:  # dropped: rebuild s_sk, remove the pairwise masks survivors added
            s_sk = shamir.combine(shares[v])
            if crypto.x25519_public(s_sk) != keys[v][1]:
                raise SecAggAbortError(f"shares of device {v:#x} do not rebuild its mask key")
            for u in u3:
                seed = masking.pair_seed(s_sk, keys[u][1], self.round, u, v)
                mask = masking.prg(seed, n, bits)
                total = (total - mask if u < v else total + mask) % modulus
        return masking.to_signed(total, bits)
