"""fedhead tasks: the front door. Thin: parse options, call model_gen/ and tools/.

`invoke --list` shows the tasks; `invoke <task> --help` explains each one.
Heavy imports (TensorFlow, PlatformIO) happen inside tasks, so `--list` stays fast.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from invoke import Context, task

T = TypeVar("T")
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


BOARD_HELP = "host | qemu_m4 (virtual, build offline) | esp32 | esp32s3"


def _board_action(action: Callable[[], T]) -> T:
    """Run a tools.boards action and turn its BoardError into a clean exit with the message."""
    from tools.boards import BoardError

    try:
        return action()
    except BoardError as err:
        raise SystemExit(f"error: {err}") from None


@task(help={"board": BOARD_HELP, "verbose": "show PlatformIO's compiler command lines"})
def build(c: Context, board: str = "host", verbose: bool = False) -> None:
    """Build the firmware for a board with PlatformIO (`pio run -e BOARD`)."""
    from tools import boards

    image = _board_action(lambda: boards.build(board, verbose))
    print(f"firmware: {image}")


PORT_HELP = "serial port (auto-detected when one board is plugged in)"


@task(help={"board": BOARD_HELP, "port": PORT_HELP})
def flash(c: Context, board: str = "esp32", port: str = "") -> None:
    """Upload the built firmware to a board (`pio run -e BOARD -t upload`)."""
    from tools import boards

    used = _board_action(lambda: boards.upload(board, port or None))
    print(f"flashed {board} on {used}")


@task(
    name="build-flash",
    help={
        "board": BOARD_HELP,
        "port": PORT_HELP,
        "monitor": "open the monitor after flashing (default on)",
    },
)
def build_flash(c: Context, board: str = "esp32", port: str = "", monitor: bool = True) -> None:
    """Build, upload, then open the frame-aware monitor: the one command for a real board."""
    from tools import boards

    _board_action(lambda: boards.build(board))
    used = _board_action(lambda: boards.upload(board, port or None))
    if monitor:
        _run(c, f"{PY} -m tools.monitor --port {used}")


@task(
    help={
        "task": "watch (default, wrist IMU), kws (simulated speakers) or a user .npz/.csv file",
        "speakers": "kws only: number of simulated speakers (default: small, a few minutes)",
    }
)
def train(c: Context, task: str = "watch", speakers: int = 0) -> None:
    """Train the float model, quantize the backbone to int8, verify in TFLM, then emit C."""
    from model_gen.cli import run_train

    run_train(task, speakers=speakers or None)


@task(help={"task": "task whose trained model to emit (default watch)",
            "force": "regenerate even when the inputs' hash is unchanged"})
def gen(c: Context, task: str = "watch", force: bool = False) -> None:
    """Emit the C sources (model array, op resolver, head init, config) into build/generated/."""
    from model_gen.cli import run_gen

    run_gen(task, force=force)


@task
def clean(c: Context) -> None:
    """Remove build outputs (build/, .pio/); keeps .venv and PlatformIO's core directory."""
    for path in (ROOT / "build", ROOT / ".pio"):
        if path.exists():
            print(f"removing {path}")
            shutil.rmtree(path)
