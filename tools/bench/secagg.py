"""SecAgg costs: bytes per device per round (from the wire format of PROTOCOL.md §7, the
same constants the firmware uses) and Cortex-M4 instructions (unicorn) of the firmware's key
agreement, mask expansion and share generation, summed into one device's SecAgg work per round.

A real round on QEMU boards gives the wall time: 4 QEMU mps2-an386 boards (PlatformIO build)
enrolled with a fresh aggregator key, trained, then one SecAgg round timed from SETUP to the
sum, with the bytes that crossed their ports counted.

The per-round instruction total is a sum of measured parts: 2 key pairs; per peer one X25519 +
HKDF + seal for the outgoing share and one X25519 + HKDF + open for the incoming one; 2 Shamir
splits; per other peer one X25519 + HKDF pairwise seed and one mask expansion; the self mask;
packing. It leaves out framing and the link's own AEAD (counted by the link section).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from tools.bench.m4 import M4_FLAGS, M4Machine, build_m4_elf
from tools.secagg import masking
from tools.secagg.shamir import SHARE_LEN

ROOT = Path(__file__).resolve().parents[2]
FEDCORE = ROOT / "firmware" / "lib" / "fedcore"
COMMON = ROOT / "firmware" / "ports" / "common"
D, C, Q_BITS = 64, 7, 8
N_PARAMS = D * C + C
FRAME_OVERHEAD = 12 + 24 + 4 + 2  # header, auth block, CRC, COBS delimiters (+ ~0.4 % COBS)
SHARE_CT = 8 + 2 * SHARE_LEN + 16
COHORTS = (10, 100)


def _elf() -> Path:
    from tests.support.third_party import crypto_include_dirs  # fetches build/third_party

    sources = [
        Path(__file__).with_name("secagg_m4.c"),
        *(FEDCORE / "src" / f"{name}.c" for name in ("secagg", "rng", "link", "cobs", "crc32")),
        *(COMMON / f"{name}.c" for name in ("crypto_monocypher", "sodium_shim",
                                            "third_party_monocypher", "third_party_sodium")),
    ]  # fmt: skip
    keep = [
        "bench_setup", "bench_x25519_public", "bench_x25519_shared", "bench_hkdf",
        "bench_seal_share", "bench_open_share", "bench_split", "bench_mask", "bench_pack",
    ]  # fmt: skip
    flags = (*M4_FLAGS, f"-DFEDCORE_MAX_D={D}", f"-DFEDCORE_MAX_C={C}")
    return build_m4_elf(
        sources, ROOT / "build" / "bench" / "secagg_m4.elf",
        include_dirs=[FEDCORE / "include", *crypto_include_dirs()], keep=keep, flags=flags,
    )  # fmt: skip


def bytes_per_round(n: int) -> dict[str, int]:
    """Payload + frame bytes one device sends and receives in a SecAgg round of cohort n
    (all devices survive), and its plain update upload for comparison."""
    bits = masking.min_bits(Q_BITS, n)
    masked = (N_PARAMS * bits + 7) // 8
    up = [68, 8 + (4 + SHARE_CT) * n, 8, 16 + masked, 8 + 52 * n]  # KEYS SHARES ACK MASKED REVEAL
    down = [12, 8 + 68 * n, 8 + (4 + SHARE_CT) * n, 12 + 4 * n, 8 + 8 * n]
    plain_update = N_PARAMS * Q_BITS // 8
    return {
        "modulus_bits": bits,
        "masked_update_bytes": masked,
        "secagg_up_bytes": sum(up) + FRAME_OVERHEAD * len(up),
        "secagg_down_bytes": sum(down) + FRAME_OVERHEAD * len(down),
        "plain_update_bytes": plain_update,
        "plain_up_bytes": 40 + plain_update + 2 * FRAME_OVERHEAD + 8,  # UPDATE_READY + 1 chunk
    }


def m4_costs(n: int, t: int) -> dict[str, int]:
    machine = M4Machine(_elf())
    if machine.call("bench_setup").return_value != 0:
        raise RuntimeError("bench_setup failed")
    part = {
        "x25519_public": machine.call("bench_x25519_public").instructions,
        "x25519_shared": machine.call("bench_x25519_shared").instructions,
        "hkdf": machine.call("bench_hkdf").instructions,
        "seal_share": machine.call("bench_seal_share").instructions,
        "open_share": machine.call("bench_open_share").instructions,
        "split": machine.call("bench_split", t, n).instructions,
        "mask": machine.call("bench_mask", N_PARAMS, masking.min_bits(Q_BITS, n)).instructions,
        "pack": machine.call("bench_pack", N_PARAMS, masking.min_bits(Q_BITS, n)).instructions,
    }
    agree = part["x25519_shared"] + part["hkdf"]
    part["round_total"] = (
        2 * part["x25519_public"]
        + n * (agree + part["seal_share"])
        + n * (agree + part["open_share"])
        + 2 * part["split"]
        + (n - 1) * (agree + part["mask"])
        + part["mask"]
        + part["pack"]
    )
    return part


QEMU_BOARDS = 4


def qemu_round(task: str) -> dict[str, float]:
    """Wall time and port bytes of one SecAgg round over QEMU boards (the task's model)."""
    import tempfile
    from contextlib import ExitStack

    import numpy as np

    from model_gen import paths
    from tools import boards
    from tools.aggregator.keys import KeyStore
    from tools.aggregator.provision import provision_client
    from tools.aggregator.store import Store
    from tools.demo.device_eval import provision as add_examples
    from tools.fleet.entropy import provision_entropy
    from tools.fleet.launch import qemu_fleet
    from tools.link import messages as m
    from tools.link.client import DeviceClient
    from tools.secagg.server import SecAggRound

    with np.load(paths.model_dir(task) / paths.DEVICES_NAME) as devices:
        x, y = devices["x"][:12], devices["y"][:12]
    with ExitStack() as stack:
        fleet = stack.enter_context(qemu_fleet(boards.build("qemu_m4"), QEMU_BOARDS))
        store = Store(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "a.sqlite")
        stack.callback(store.close)
        secret = KeyStore(store.conn).server_secret()
        clients = {}
        for device in fleet:
            client = stack.enter_context(DeviceClient.open(device.url, timeout=10.0))
            client.hello()
            provision_entropy(client)
            provision_client(client, store)
            client.start_session(secret)
            add_examples(client, x.reshape(len(x), -1), y)
            client.train(m.Train(round=1, lr=0.1, clip=0.5, scale=0.5 / 4096, bits=8))
            clients[client.device_id] = client
        ready = {d: c.wait_update_ready(1, timeout=120) for d, c in clients.items()}
        n_params = next(iter(ready.values())).n_params
        before = sum(c.transport.bytes_written + c.transport.bytes_read for c in clients.values())
        started = time.perf_counter()
        SecAggRound(clients, 1, QEMU_BOARDS // 2 + 1, Q_BITS, n_params).run()
        wall = time.perf_counter() - started
        after = sum(c.transport.bytes_written + c.transport.bytes_read for c in clients.values())
    return {
        "boards": QEMU_BOARDS,
        "round_s": round(wall, 3),
        "port_bytes_per_device": (after - before) // QEMU_BOARDS,
    }


def measure(task: str = "watch") -> dict[str, Any]:
    n = 10
    return {
        "head": f"{D}x{C}, q {Q_BITS} bits",
        "bytes": {f"cohort_{k}": bytes_per_round(k) for k in COHORTS},
        "m4_instructions_cohort_10": m4_costs(n, t=math.floor(n / 2) + 1),
        "qemu_round": qemu_round(task),
    }
