"""fedhead tasks: the front door. Thin: parse options, call model_gen/ and tools/.

`invoke --list` shows the tasks; `invoke <task> --help` explains each one.
Heavy imports (TensorFlow, PlatformIO) happen inside tasks, so `--list` stays fast.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from invoke import Context, task

ROOT = Path(__file__).resolve().parent
PY = sys.executable

os.environ.setdefault("PLATFORMIO_DISABLE_UPGRADE_CHECK", "true")
os.environ.setdefault("PLATFORMIO_SETTING_ENABLE_TELEMETRY", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _run(c: Context, cmd: str, **kwargs: object) -> object:
    return c.run(cmd, pty=False, echo=True, **kwargs)


@task
def setup(c: Context) -> None:
    """Install everything (Debian packages, .venv, PlatformIO offline pieces): ./fedhead setup."""
    _run(c, f"{ROOT / 'fedhead'} setup")


@task(
    help={
        "k": "only run tests matching this pytest -k expression",
        "slow": "also run tests marked slow",
        "path": "run only these tests (file or folder)",
    }
)
def test(c: Context, k: str = "", slow: bool = False, path: str = "") -> None:
    """Run ruff and every test (unit, equivalence C vs Python vs TFLM, HIL on virtual boards)."""
    _run(c, f"{PY} -m ruff check .")
    args = [PY, "-m", "pytest", path or "tests"]
    if k:
        args += ["-k", repr(k)]
    if not slow:
        args += ["-m", repr("not slow")]
    _run(c, " ".join(args))


@task
def clean(c: Context) -> None:
    """Remove build outputs (build/, .pio/); keeps .venv and PlatformIO's core directory."""
    for path in (ROOT / "build", ROOT / ".pio"):
        if path.exists():
            print(f"removing {path}")
            shutil.rmtree(path)
