"""Entropy for virtual boards that have no source of their own (test-only).

The QEMU mps2-an386 board has no hardware random generator, so its firmware refuses to draw
noise (NACK BAD_STATE) until the host provisions a 32-byte seed with SEED. That makes the
noise known to the host: acceptable for emulated test boards only, which is why SEED exists
only in replay-profile builds (docs/PRIVACY.md). Real boards and the host port seed themselves.
"""

from __future__ import annotations

import secrets

from tools.link.client import DeviceClient

BOARDS_WITHOUT_ENTROPY = frozenset({"qemu-mps2-an386"})


def provision_entropy(client: DeviceClient) -> bool:
    """Seed the device from the host's CSPRNG if its board has no entropy; True if seeded."""
    info = client.info or client.hello()
    if info.board_name not in BOARDS_WITHOUT_ENTROPY:
        return False
    client.seed(secrets.token_bytes(32))
    return True
