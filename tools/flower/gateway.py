"""`invoke gateway` / `python -m tools.flower.gateway`: serial boards on this machine, each as a
Flower SuperNode of a remote SuperLink.

For every --port the gateway opens a bridge (tools/flower/bridge.py: owns the serial port,
serves a 0600 Unix socket) and starts one `flower-supernode` whose node config names that
socket; Flower's ClientApp (tools/flower/client_app.py) forwards each round to it. The gateway
runs until interrupted and then stops its SuperNodes by PID.

The gateway holds no device keys and relays the device's bytes unchanged: updates leave the
board already clipped, noised and quantized by the device. For a board enrolled with the
aggregator (`invoke provision` against its store) the ServerApp seals every request and the
device seals its update for the ServerApp (tools/flower/relay.py): the gateway sees cipher
text, and a frame it alters or replays is refused. A board that is not enrolled talks plain:
its gateway can read its privatized update and could drop or alter it within the ServerApp's
validation bounds. What the gateway holds: the deployment CA certificate (to check the
SuperLink) and, with node authentication, one private key per SuperNode
(<auth-keys>/<board>.key). `--tap DIR` writes every relayed frame to DIR/<board>.tap (JSON
lines): what the gateway saw, for an audit.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tools.flower.bridge import Bridge
from tools.flower.processes import ROOT, FlowerProcess, Tls, start_supernode
from tools.flower.tls import supernode_keypair

DEFAULT_DIR = ROOT / "build/flower/gateway"
RESTART_BACKOFF_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def board_name(url: str) -> str:
    """A stable name for a serial URL (key files, sockets, logs)."""
    return "board-" + hashlib.sha256(url.encode()).hexdigest()[:10]


@dataclass
class Gateway:
    superlink: str
    tls: Tls
    work_dir: Path = DEFAULT_DIR
    key_dir: Path | None = None  # node authentication: one key pair per board, made if missing
    tap_dir: Path | None = None  # every relayed frame, per board (Bridge.tap)
    console: Console | None = None
    bridges: list[Bridge] = field(default_factory=list)
    supernodes: list[FlowerProcess] = field(default_factory=list)
    _exited_at: dict[str, float] = field(default_factory=dict)

    def public_keys(self, urls: list[str]) -> list[Path]:
        """The SuperNode public keys the SuperLink must know (`flwr supernode register`)."""
        if self.key_dir is None:
            return []
        return [supernode_keypair(self.key_dir, board_name(url))[1] for url in urls]

    def add_board(self, url: str) -> FlowerProcess:
        """Bridge `url` and start its SuperNode."""
        name = board_name(url)
        tap = None
        if self.tap_dir is not None:
            self.tap_dir.mkdir(parents=True, exist_ok=True)
            tap = self.tap_dir / f"{name}.tap"
        bridge = Bridge(url, self.work_dir / f"{name}.sock", on_request=self._log(url), tap=tap)
        bridge.start()
        self.bridges.append(bridge)
        self.supernodes.append(self._start_supernode(bridge))
        return self.supernodes[-1]

    def _start_supernode(self, bridge: Bridge) -> FlowerProcess:
        name = board_name(bridge.url)
        key = supernode_keypair(self.key_dir, name)[0] if self.key_dir is not None else None
        return start_supernode(
            f"supernode-{name}",
            self.superlink,
            self.tls,
            free_port(),
            {"bridge": str(bridge.socket_path), "serial": bridge.url},
            self.work_dir / "home",
            self.work_dir / "logs",
            auth_key=key,
        )

    def supervise(self) -> None:
        """Restart SuperNodes that exited. A SuperNode gives up when the SuperLink refuses to
        activate it — e.g. its previous session, killed, is still counted online until two
        missed heartbeats (60 s in flwr 1.42) — or when the SuperLink restarts."""
        now = time.monotonic()
        for index, supernode in enumerate(self.supernodes):
            if supernode.alive():
                continue
            if supernode.name not in self._exited_at:
                self._exited_at[supernode.name] = now
                self._say(
                    f"{supernode.name} exited ({supernode.process.returncode}); "
                    f"restarting in {RESTART_BACKOFF_S:.0f} s"
                )
            elif now - self._exited_at[supernode.name] >= RESTART_BACKOFF_S:
                del self._exited_at[supernode.name]
                supernode.stop()
                self.supernodes[index] = self._start_supernode(self.bridges[index])

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def _log(self, url: str) -> Callable[[str, dict[str, Any]], None]:
        def log(op: str, detail: dict[str, Any]) -> None:
            self._say(f"{url}: {op} {detail}")

        return log

    def stop(self) -> None:
        for supernode in self.supernodes:
            supernode.stop()
        for bridge in self.bridges:
            bridge.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.flower.gateway", description=__doc__)
    p.add_argument(
        "--port",
        action="append",
        required=True,
        help="pyserial URL of a board on this machine; repeat for several boards",
    )
    p.add_argument("--superlink", required=True, help="the SuperLink's HOST:PORT")
    p.add_argument(
        "--root-certificates",
        type=Path,
        default=None,
        help="the deployment's CA certificate (PEM) that signed the SuperLink's",
    )
    p.add_argument(
        "--auth-keys",
        type=Path,
        default=None,
        help="folder of SuperNode key pairs (made if missing): node authentication",
    )
    p.add_argument(
        "--insecure", action="store_true", help="plain HTTP to the SuperLink: loopback tests only"
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_DIR,
        help="bridge sockets, SuperNode logs and Flower's home",
    )
    p.add_argument(
        "--tap",
        type=Path,
        default=None,
        help="folder: append every relayed frame to <board>.tap (what this gateway saw)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    console = Console()
    if not args.insecure and args.root_certificates is None:
        raise SystemExit("give --root-certificates CA.crt (the deployment's CA); see DEPLOYMENT.md")
    tls = Tls(ca_cert=args.root_certificates, insecure=args.insecure)
    gateway = Gateway(
        args.superlink, tls, args.work_dir, args.auth_keys, console=console, tap_dir=args.tap
    )
    for public in gateway.public_keys(args.port):
        console.print(
            f"SuperNode key {public}: register it once on the SuperLink machine with "
            f"`flwr supernode register {public}`"
        )
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for url in args.port:
            supernode = gateway.add_board(url)
            console.print(f"gateway: {url} -> SuperNode pid {supernode.pid} -> {args.superlink}")
        console.print("gateway ready", highlight=False)
        while not stopping:
            gateway.supervise()
            time.sleep(0.5)
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
