"""The vetted crypto sources the host and QEMU firmware compile (boards/scripts/third_party.py).

Tests call `crypto_build()` so that a fresh checkout fetches the pinned sdists on first use
(`./fedhead setup` does the same); afterwards it only checks the stamps.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from tests.support.cbuild import REPO

COMMON_PORT = REPO / "firmware" / "ports" / "common"
# The fedcore crypto contract implemented on the third-party sources (host and QEMU ports).
CRYPTO_PORT_SOURCES = tuple(
    COMMON_PORT / f"{name}.c"
    for name in ("crypto_monocypher", "sodium_shim", "third_party_monocypher", "third_party_sodium")
)


@cache
def _fetcher() -> ModuleType:
    path = REPO / "boards" / "scripts" / "third_party.py"
    spec = importlib.util.spec_from_file_location("fedhead_third_party", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def crypto_include_dirs() -> list[Path]:
    """Ensure build/third_party/ is in place and return its include folders."""
    fetcher = _fetcher()
    fetcher.ensure()
    return list(fetcher.INCLUDE_DIRS)
