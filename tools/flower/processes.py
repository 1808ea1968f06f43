"""Start and stop Flower's processes (SuperLink, SuperNode, `flwr run`) for fedhead.

Each process runs in its own session; `FlowerProcess.stop()` ends it and every process it
started (Flower's SuperExec and app subprocesses), by PID, SIGTERM then SIGKILL. The Flower
CLI's configuration lives in a private FLWR_HOME (never the user's ~/.flwr): one `fedhead`
SuperLink connection with the deployment's CA.

Every command puts the fedhead tree on PYTHONPATH: the ServerApp and ClientApp components
(tools/flower) are imported from it, not from the FAB.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = Path(__file__).resolve().parent / "app"
BIN = Path(sys.executable).parent
CONNECTION = "fedhead"
STOP_GRACE_S = 10.0


class FlowerError(RuntimeError):
    """A Flower process failed; the message says which, with the end of its log."""


def flower_env(home: Path) -> dict[str, str]:
    """Environment for Flower commands: the venv first on PATH (SuperLink and SuperNode start
    `flower-superexec` by name), fedhead importable, a private FLWR_HOME."""
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": python_path,
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
    }


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _signal(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


TAG_VARIABLE = "FEDHEAD_FLOWER_TAG"


def _tagged(tag: str) -> list[int]:
    """PIDs whose environment carries `tag`: every process a spawned one started, also those
    that daemonized away from its tree (Ray's raylet, GCS and actors in a simulation)."""
    marker = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass
class FlowerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    tag: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End this process and what it started (by PID); SIGKILL after a grace period."""
        family = [self.pid, *_descendants(self.pid)]
        family += [p for p in (_tagged(self.tag) if self.tag else []) if p not in family]
        _signal(family, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.05)
        if self.alive():
            _signal([self.pid], signal.SIGKILL)
        self.process.wait()
        # SuperExec processes watch their parent and leave with it; any that did not are ended
        leftovers = [p for p in family[1:] if Path(f"/proc/{p}").exists()]
        deadline = time.monotonic() + STOP_GRACE_S
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.1)
            leftovers = [p for p in leftovers if _running(p)]
        _signal(leftovers, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug would (the test of a dropout)."""
        self.stop(signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def spawn(name: str, cmd: list[str], home: Path, log_dir: Path) -> FlowerProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    tag = f"{name}-{uuid.uuid4().hex}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**flower_env(home), TAG_VARIABLE: tag},
            cwd=ROOT,
            start_new_session=True,
        )
    return FlowerProcess(name, process, log_path, tag)


@dataclass(frozen=True)
class Tls:
    """TLS material of a deployment; `insecure` is for loopback tests only."""

    ca_cert: Path | None = None
    server_cert: Path | None = None
    server_key: Path | None = None
    insecure: bool = False

    def superlink_args(self) -> list[str]:
        if self.insecure:
            return ["--insecure"]
        if not (self.ca_cert and self.server_cert and self.server_key):
            raise FlowerError("the SuperLink needs a CA, certificate and key (tools/flower/tls)")
        return [
            "--ssl-ca-certfile",
            str(self.ca_cert),
            "--ssl-certfile",
            str(self.server_cert),
            "--ssl-keyfile",
            str(self.server_key),
        ]

    def supernode_args(self) -> list[str]:
        if self.insecure:
            return ["--insecure"]
        if self.ca_cert is None:
            raise FlowerError(
                "a gateway needs the deployment's CA certificate (--root-certificates)"
            )
        return ["--root-certificates", str(self.ca_cert)]


def write_connection(home: Path, address: str, tls: Tls) -> None:
    """FLWR_HOME/config.toml with the `fedhead` SuperLink connection as the default."""
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
    lines.append(f'address = "{address}"')
    if tls.insecure:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{tls.ca_cert}"')
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def start_superlink(
    host: str,
    port: int,
    tls: Tls,
    home: Path,
    log_dir: Path,
    node_auth: bool = False,
    database: Path | None = None,
    simulation: bool = False,
) -> FlowerProcess:
    """A SuperLink serving Fleet, Control and Runtime APIs on host:port (HTTP/TLS)."""
    cmd = [
        str(BIN / "flower-superlink"),
        *tls.superlink_args(),
        "--host",
        host,
        "--port",
        str(port),
    ]
    cmd.append("--disable-runtime-dependency-installation")  # fedhead's set-up installs deps
    if node_auth:
        cmd.append("--enable-supernode-auth")
    if database is not None:
        cmd += ["--database", str(database)]
    if simulation:
        cmd.append("--simulation")
    write_connection(home, f"{host}:{port}", tls)
    superlink = spawn("superlink", cmd, home, log_dir)
    wait_for_port(superlink, host, port)
    return superlink


def start_supernode(
    name: str,
    superlink: str,
    tls: Tls,
    runtime_port: int,
    node_config: dict[str, str],
    home: Path,
    log_dir: Path,
    auth_key: Path | None = None,
) -> FlowerProcess:
    """A SuperNode connected to `superlink`; its local Runtime API listens on 127.0.0.1."""
    config = " ".join(f"{k}={json.dumps(v)}" for k, v in node_config.items())
    cmd = [str(BIN / "flower-supernode"), *tls.supernode_args(), "--superlink", superlink]
    cmd += ["--host", "127.0.0.1", "--port", str(runtime_port), "--node-config", config]
    if auth_key is not None:
        cmd += ["--auth-supernode-private-key", str(auth_key)]
    return spawn(name, cmd, home, log_dir)


def wait_for_port(process: FlowerProcess, host: str, port: int, timeout: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise FlowerError(f"{process.name} exited:\n{process.log_tail()}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise FlowerError(f"{process.name} did not listen on {host}:{port}:\n{process.log_tail()}")


def flwr(args: list[str], home: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the `flwr` CLI against the private FLWR_HOME; raises FlowerError on failure."""
    result = subprocess.run(
        [str(BIN / "flwr"), *args],
        capture_output=True,
        text=True,
        env=flower_env(home),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise FlowerError(f"flwr {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def register_supernode(public_key: Path, home: Path) -> None:
    """Allow a SuperNode's key on a SuperLink started with node authentication."""
    flwr(["supernode", "register", str(public_key), CONNECTION], home, timeout=60)


def run_app(run_config: dict[str, str], home: Path, log_path: Path, timeout: float) -> str:
    """`flwr run` the fedhead app and stream its logs until the ServerApp ends; returns them."""
    overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
    args = ["run", str(APP_DIR), CONNECTION, "--run-config", overrides, "--stream"]
    result = flwr(args, home, timeout)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(result.stdout + result.stderr)
    return result.stdout
