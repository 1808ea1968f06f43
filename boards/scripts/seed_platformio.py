"""Seed PlatformIO's core directory with the pieces an offline build needs.

PlatformIO runs every build through its `tool-scons` package, which it would otherwise
download from its registry (unreachable here, and a 60 s stall when tried). We build that
package from the SCons wheel already installed in the venv from PyPI: the `SCons` package,
a `scons.py` entry script, a `package.json` and a `.piopm` owned by `platformio`, which is
what PlatformIO's package manager looks for. Idempotent: an intact seed is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import SCons

SCONS_PIO_VERSION = "4.41101.0"  # PlatformIO's encoding of SCons 4.11.1, as dependencies.py asks
ENTRY_SCRIPT = '''"""SCons entry point for PlatformIO (seeded by fedhead from the PyPI wheel)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import SCons.Script  # noqa: E402

SCons.Script.main()
'''


def core_dir() -> Path:
    return Path(os.environ.get("PLATFORMIO_CORE_DIR", Path.home() / ".platformio"))


def seed_tool_scons(packages: Path) -> bool:
    target = packages / "tool-scons"
    meta = target / ".piopm"
    if meta.is_file() and json.loads(meta.read_text())["version"] == SCONS_PIO_VERSION:
        return False
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copytree(Path(SCons.__file__).parent, target / "SCons")
    (target / "scons.py").write_text(ENTRY_SCRIPT)
    manifest = {"name": "tool-scons", "version": SCONS_PIO_VERSION,
                "description": "SCons 4.11.1 from PyPI, seeded for offline builds"}
    (target / "package.json").write_text(json.dumps(manifest))
    spec = {"owner": "platformio", "id": None, "name": "tool-scons",
            "requirements": None, "uri": None}
    meta.write_text(json.dumps({"type": "tool", "name": "tool-scons",
                                "version": SCONS_PIO_VERSION, "spec": spec}))
    return True


def main() -> int:
    packages = core_dir() / "packages"
    seeded = seed_tool_scons(packages)
    state = "seeded" if seeded else "already present"
    print(f"  PlatformIO tool-scons {state} in {packages / 'tool-scons'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
