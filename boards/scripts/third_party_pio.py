"""PlatformIO `pre:` extra script of the virtual boards: the vetted crypto sources.

Runs boards/scripts/third_party.py (idempotent: fetches the pinned pymonocypher and pynacl
sdists only when build/third_party/ is missing or stale) and adds its folders to the include
path; firmware/ports/common/third_party_*.c compile the sources from there.
"""

import os
import subprocess

Import("env")  # noqa: F821  (provided by PlatformIO's SCons)

PROJECT_DIR = env.subst("$PROJECT_DIR")  # noqa: F821
THIRD_PARTY = os.path.join(PROJECT_DIR, "build", "third_party")

result = subprocess.run(
    [env.subst("$PYTHONEXE"), os.path.join(PROJECT_DIR, "boards", "scripts", "third_party.py")],  # noqa: F821
    cwd=PROJECT_DIR,
)
if result.returncode != 0:
    env.Exit(1)  # noqa: F821
env.Append(  # noqa: F821
    CPPPATH=[os.path.join(THIRD_PARTY, "monocypher"), os.path.join(THIRD_PARTY, "libsodium")]
)
