"""`python -m tools.monitor --port URL`: frame-aware serial monitor (Ctrl+C quits)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from tools.link.errors import PortGoneError
from tools.monitor.render import run_monitor


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.monitor", description=__doc__)
    parser.add_argument("--port", required=True, help="pyserial URL (tty, pty, socket://)")
    parser.add_argument("--baud", type=int, default=115200)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            run_monitor(args.port, _write, stop=lambda: False, baudrate=args.baud)
        except PortGoneError as exc:
            raise SystemExit(f"\n{exc}") from exc


if __name__ == "__main__":
    main()
