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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Models the test suite checks (bit-exactness, firmware, demo); trained once, then cached.
TEST_TASKS = ("watch", "kws")


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
    """Run ruff and every test (unit, equivalence C vs Python vs TFLM, HIL on virtual boards).

    Trains the models the tests check first when their inputs changed (cached otherwise)."""
    from model_gen.freshness import ensure_trained

    _run(c, f"{PY} -m ruff check .")
    for model_task in TEST_TASKS:
        ensure_trained(model_task)
    args = [PY, "-m", "pytest", path or "tests"]
    if k:
        args += ["-k", repr(k)]
    if not slow:
        args += ["-m", repr("not slow")]
    _run(c, " ".join(args))


BOARD_HELP = (
    "host | qemu_m4 (virtual, build offline) | esp32 | esp32s3 | esp32_replay (= esp32 "
    "--profile replay, for the emulator HIL)"
)
PROFILE_HELP = (
    "production (the default where the board has one: what a real board runs) or replay "
    "(SAMPLE/INFER on host windows, SEED, seeded TRAIN: simulations and tests; qemu_m4 and "
    "esp32_replay have only replay)"
)


def _board_action(action: Callable[[], T]) -> T:
    """Run a tools.boards action and turn its BoardError into a clean exit with the message."""
    from tools.boards import BoardError

    try:
        return action()
    except BoardError as err:
        raise SystemExit(f"error: {err}") from None


@task(
    help={
        "board": BOARD_HELP,
        "profile": PROFILE_HELP,
        "verbose": "show PlatformIO's compiler command lines",
    }
)
def build(
    c: Context, board: str = "host", profile: str = "", verbose: bool = False
) -> None:
    """Build the firmware for a board with PlatformIO (`pio run -e ENV` of the profile)."""
    from tools import boards

    image = _board_action(lambda: boards.build(board, verbose, profile or None))
    print(f"firmware: {image}")


PORT_HELP = "serial port (auto-detected when one board is plugged in)"


@task(
    help={
        "board": BOARD_HELP,
        "port": PORT_HELP,
        "profile": PROFILE_HELP,
        "sensor": "host board only: file of labelled windows (u8 label + int8 window each) the "
        "board collects at boot, its stand-in for a sensor",
    }
)
def flash(
    c: Context, board: str = "esp32", port: str = "", profile: str = "", sensor: str = "",
) -> None:
    """Upload the built firmware to a board (`pio run -e ENV -t upload`).

    For a virtual board (host, qemu_m4) this starts it and prints its port instead."""
    from tools import boards

    if boards.board(board).virtual:
        sensor_path = Path(sensor) if sensor else None
        _board_action(
            lambda: boards.run_virtual(board, profile=profile or None, sensor=sensor_path)
        )
        return
    used = _board_action(lambda: boards.upload(board, port or None, profile or None))
    print(f"flashed {board} on {used}")


@task(
    name="build-flash",
    help={
        "board": BOARD_HELP,
        "port": PORT_HELP,
        "monitor": "open the monitor after flashing (default on)",
        "profile": PROFILE_HELP,
    },
)
def build_flash(
    c: Context, board: str = "esp32", port: str = "", monitor: bool = True,
    profile: str = "",
) -> None:
    """Build, upload, then open the frame-aware monitor: the one command for a real board."""
    from tools import boards

    _board_action(lambda: boards.build(board, profile=profile or None))
    used = _board_action(lambda: boards.upload(board, port or None, profile or None))
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


@task(
    iterable=["port", "node_key"],
    auto_shortflags=False,  # 17 options: automatic letters collide (-h would mean --epochs)
    help={
        "port": "pyserial URL of a device (/dev/ttyUSB0, /dev/pts/N, socket://127.0.0.1:P); repeat",
        "rounds": "total committed rounds to reach (a rerun resumes the store)",
        "privacy": "none | central | distributed | local (docs/PRIVACY.md)",
        "noise_multiplier": "z: noise std z·clip (central, local), z·clip/√t per device "
        "(distributed: t the SecAgg threshold; every release carries K devices' noise)",
        "clip": "C: L2 bound of each device's update",
        "delta": "δ of the reported (ε, δ)",
        "epsilon_budget": "ε a release may never exceed: a round whose actual participation "
        "would pass it releases nothing; the run stops when even a full round would "
        "(default: no budget)",
        "cohort": "expected users (or devices, --unit device) per round, Poisson-sampled from "
        "the registered population with q = cohort/registered (0: all, q = 1)",
        "population": "declared population: a warning when fewer are registered",
        "unit": "user (default; sensitivity scaled by devices per user) | device",
        "enrollment": "CSV of device_id,user_id lines registering the population",
        "strategy": "fedavg | median | trimmed_mean",
        "server_lr": "server learning rate",
        "server_optimizer": "sgd | adam (FedAdam)",
        "lr": "device learning rate",
        "epochs": "device epochs per round",
        "deadline": "seconds per round for training and upload",
        "task": "model task: initial head and holdout from build/model/<task>/",
        "store": "SQLite store (default build/aggregator/aggregate.sqlite)",
        "secagg": "secure aggregation (with --privacy distributed; devices enrolled with "
        "`invoke provision` into the same --store)",
        "simulation": "declare the run a simulation: replay-profile boards may take part "
        "(without it they are refused)",
        "engine": "builtin (boards on this machine, --port) | flower (boards behind gateways "
        "of a Flower SuperLink; docs/DEPLOYMENT.md)",
        "superlink": "flower: SuperLink HOST:PORT (default 127.0.0.1:9091; started here unless "
        "--connect)",
        "connect": "flower: use a running SuperLink instead of starting one",
        "boards": "flower: boards to wait for before round 1 (default 1)",
        "node_key": "flower: a gateway's SuperNode public key (.pub); enables SuperNode "
        "authentication; repeat",
        "bits": "UPDATE value width 8/16/32 (default 8: 510 B at 64×7; grid from "
        "docs/PRIVACY.md's rule)",
    },
)
def aggregate(c: Context, port: list[str], rounds: int = 10, privacy: str = "none",
              noise_multiplier: float = 1.0, clip: float = 1.0, delta: float = 1e-5,
              epsilon_budget: float = float("inf"), cohort: int = 0, population: int = 0,
              strategy: str = "fedavg", server_lr: float = 1.0, server_optimizer: str = "sgd",
              lr: float = 0.05, epochs: int = 1, deadline: float = 30.0, task: str = "watch",
              store: str = "", unit: str = "user", enrollment: str = "",
              secagg: bool = False, simulation: bool = False, engine: str = "builtin",
              superlink: str = "127.0.0.1:9091", connect: bool = False, boards: int = 1,
              node_key: list[str] | None = None, bits: int = 8) -> None:
    """Run DP federated rounds over devices; writes build/report/aggregate.json and PNGs."""
    from tools.aggregator.run import main

    if not port and engine != "flower":
        raise SystemExit("give at least one --port (e.g. --port /dev/ttyUSB0)")
    flower = [f"--engine={engine}", f"--superlink={superlink}", f"--boards={boards}"] + (
        ["--connect"] if connect else []) + [f"--node-key={k}" for k in node_key or []]
    argv = flower + [f"--port={p}" for p in port] + [
        f"--rounds={rounds}", f"--privacy={privacy}", f"--noise-multiplier={noise_multiplier}",
        f"--clip={clip}", f"--delta={delta}", f"--epsilon-budget={epsilon_budget}",
        f"--cohort={cohort}", f"--population={population}", f"--strategy={strategy}",
        f"--server-lr={server_lr}", f"--server-optimizer={server_optimizer}", f"--lr={lr}",
        f"--epochs={epochs}", f"--deadline={deadline}", f"--task={task}", f"--unit={unit}",
        f"--bits={bits}",
    ] + ([f"--store={store}"] if store else []) + (
        [f"--enrollment={enrollment}"] if enrollment else []) + (
        ["--secagg"] if secagg else []) + (["--simulation"] if simulation else [])
    main(argv)


@task(
    iterable=["port"],
    help={
        "port": "pyserial URL of a board on this machine; repeat (one SuperNode per board)",
        "superlink": "the SuperLink's HOST:PORT",
        "root_certificates": "the deployment's CA certificate (PEM); default "
        "build/flower/keys/ca.crt",
        "auth_keys": "folder of SuperNode key pairs, made if missing (node authentication)",
        "insecure": "plain HTTP to the SuperLink: loopback tests only",
        "tap": "folder: append every frame each bridge relays to <board>.tap (an audit)",
    },
)
def gateway(c: Context, port: list[str], superlink: str = "", root_certificates: str = "",
            auth_keys: str = "", insecure: bool = False, tap: str = "") -> None:
    """Serve boards on this machine as Flower SuperNodes of a SuperLink (docs/DEPLOYMENT.md)."""
    from tools.flower.gateway import main

    if not port or not superlink:
        raise SystemExit("give --port URL (repeatable) and --superlink HOST:PORT")
    ca = root_certificates or str(ROOT / "build/flower/keys/ca.crt")
    argv = [f"--port={p}" for p in port] + [f"--superlink={superlink}"]
    argv += ["--insecure"] if insecure else [f"--root-certificates={ca}"]
    argv += [f"--auth-keys={auth_keys}"] if auth_keys else []
    argv += [f"--tap={tap}"] if tap else []
    main(argv)


@task(help={"port": "pyserial URL of the device (tty, pty, socket://, rfc2217://)",
            "user": "user the device belongs to (user-level accounting)",
            "force": "replace an enrollment (device: right after power-on; store: another key)",
            "store": "SQLite store (default build/aggregator/aggregate.sqlite)"})
def provision(c: Context, port: str, user: str = "", force: bool = False,
              store: str = "") -> None:
    """Enroll a device: it keeps the server's public key, the store its device key (TOFU)."""
    from tools.aggregator.provision import main

    main([f"--port={port}", *([f"--user={user}"] if user else []),
          *(["--force"] if force else []), *([f"--store={store}"] if store else [])])


@task(help={"port": "pyserial URL of the device (tty, pty, socket://, rfc2217://)",
            "baud": "baud rate (ignored by ptys and sockets)"})
def monitor(c: Context, port: str, baud: int = 115200) -> None:
    """Show a device's output: fedhead frames as readable lines, other bytes as they come."""
    from tools.monitor.__main__ import main

    main([f"--port={port}", f"--baud={baud}"])


@task(
    help={
        "task": "watch (default) or kws",
        "board": "host (default: firmware processes on ptys) or qemu_m4 (QEMU on socket://)",
        "devices": "how many virtual devices (default: every federated and held-out device)",
        "rounds": "federated rounds (default 5)",
        "privacy": "none | central | distributed (default) | local",
        "noise_multiplier": "z: noise std = z × clip (default 1.0)",
        "clip": "C: L2 bound of each device's head delta (default 0.5)",
        "k": "labelled windows per class each device personalizes from (default 10)",
        "secagg": "secure aggregation in distributed mode (default on; --no-secagg: off)",
        "bits": "UPDATE value width 8/16/32 (default 8)",
    }
)
def demo(c: Context, task: str = "watch", board: str = "host", devices: int = 0,
         rounds: int = 5, privacy: str = "distributed", noise_multiplier: float = 1.0,
         clip: float = 0.5, k: int = 10, secagg: bool = True, bits: int = 8) -> None:
    """Run the whole loop on virtual boards and report (build/report/demo.md).

    Train/gen/build if inputs changed, start the fleet, personalize on the devices, run DP
    federated rounds over the serial link, evaluate, write demo.json, demo.md and plots."""
    from tools.demo.run import DemoConfig, run_demo

    report = run_demo(DemoConfig(task=task, board=board, devices=devices, rounds=rounds,
                                 privacy=privacy, noise_multiplier=noise_multiplier,
                                 clip=clip, k=k, secagg=secagg, bits=bits))
    held, fed, p = report["held_out"], report["federated"], report["privacy"]
    eps = "∞" if p["epsilon"] is None else f"{p['epsilon']:.2f}"
    print(f"held-out: global {held['global_acc']:.3f} → personal {held['personal_acc']:.3f} "
          f"(lift {held['lift']:+.3f}; local-only {held['local_only_acc']:.3f})\n"
          f"federated: pretrain {fed['pretrain_acc']:.3f} → global "
          f"{fed['global_acc_by_round'][-1]:.3f} after {report['rounds']} rounds; "
          f"ε = {eps} at δ = {p['delta']:g} ({p['mode']})\n"
          f"wall {report['wall_s']:.1f} s — see build/report/demo.md")


@task(
    help={
        "port": "pyserial URL of a flashed board (/dev/ttyUSB0, socket://HOST:PORT for an "
        "emulator); empty: the virtual boards (host and QEMU)",
        "board": "the board behind --port (default esp32)",
        "profile": "build profile of the board behind --port: production (default for esp32/"
        "esp32s3; replay-only checks are skipped) or replay",
    }
)
def hil(c: Context, port: str = "", board: str = "esp32", profile: str = "") -> None:
    """Hardware-in-the-loop tests on a flashed board (--port) or the virtual boards.

    Boot (waits for the board), model install, inference vs the host reference, a training
    round, update validity, reset in the middle of a transfer."""
    from model_gen.freshness import ensure_trained

    ensure_trained("watch")
    target = f"--port {port} --board {board}" if port else ""
    if port and profile:
        target += f" --profile {profile}"
    _run(c, f"{PY} -m pytest tests/hil {target}")


@task(
    help={
        "task": "kws (default: new simulated speakers) or watch (its devices)",
        "clients": "simulated clients (kws speakers; default 1000, cached after the first run)",
        "rounds": "federated rounds (default 20)",
        "cohort": "expected clients per round: Poisson sampling, q = cohort/clients "
        "(default 100)",
        "noise": "comma-separated noise multipliers z, 0 = no noise (default 0,0.5,1,2)",
        "clip": "C: L2 bound of each client's delta (default 0.5)",
        "privacy": "comma-separated DP modes run for each z > 0: central, distributed, local "
        "(default central,distributed)",
        "dropout": "probability that a selected client does not answer (default 0)",
        "engine": "builtin (numpy, one process) | flower (one Flower virtual SuperNode per "
        "client in Flower's simulation runtime; docs/DEPLOYMENT.md)",
        "bits": "UPDATE value width 8/16/32, scale from docs/PRIVACY.md's rule (default 8)",
    }
)
def simulate(c: Context, task: str = "kws", clients: int = 1000, rounds: int = 20,
             cohort: int = 100, noise: str = "0,0.5,1,2", clip: float = 0.5,
             privacy: str = "central,distributed", dropout: float = 0.0,
             engine: str = "builtin", bits: int = 8) -> None:
    """Simulate thousands of clients with the vectorized twins: accuracy vs ε curves per mode.

    Distributed mode quantizes and adds the device's discrete Gaussian; ε comes from the
    aggregator's accountant. Writes build/report/simulate.json and simulate.png."""
    from tools.fleet.simulator import SimConfig, run_simulation

    config = SimConfig(task=task, clients=clients, rounds=rounds, cohort=cohort, clip=clip,
                       noise_multipliers=tuple(float(z) for z in noise.split(",")),
                       modes=tuple(m.strip() for m in privacy.split(",")), dropout=dropout,
                       bits=bits)
    if engine == "flower":
        import json

        from tools.flower.simulation import run_flower_simulation

        path = run_flower_simulation(config, ROOT / "build/report")
        report = json.loads(path.read_text())
    else:
        report = run_simulation(config)
    print(f"{report['config']['clients']} clients, initial accuracy {report['initial_acc']:.3f}; "
          f"see build/report/simulate.png ({report['wall_s']:.0f} s)")


@task(
    help={
        "task": "task to cross-validate (default watch)",
        "folds": "user folds; every user is held out once (default 5)",
        "repeats": "shot draws per held-out device and k (default 10)",
        "k": "comma-separated shots per class (default 2,5,10)",
        "noise": "noise multiplier z of the federated rounds, 0 = none (default 1, the demo's)",
        "scored": "heldout (default, the result) or federated: the selection set for choosing "
        "personalization settings without looking at held-out users (writes evaluate-federated.*)",
        "strength": "prototype strength of the personal head (default 1, the device's); other "
        "values only with --scored federated",
    }
)
def evaluate(c: Context, task: str = "watch", folds: int = 5, repeats: int = 10,
             k: str = "2,5,10", noise: float = 1.0, scored: str = "heldout",
             strength: float = 1.0) -> None:
    """User-level cross-validation: global, personal and local-only with 95 % intervals.

    Trains one backbone per fold (cached in build/eval/), federates and personalizes with the
    Python twins; writes build/report/evaluate.json, evaluate.md and evaluate.png."""
    from tools.evaluate.crossval import EvalConfig, run_crossval
    from tools.evaluate.report import markdown, write_report

    config = EvalConfig(task=task, folds=folds, repeats=repeats,
                        ks=tuple(int(v) for v in k.split(",")), noise_multiplier=noise,
                        scored=scored, imprint_strength=strength)
    report = run_crossval(config)
    path = write_report(report)
    print(markdown(report))
    print(f"wrote {path} and its .md and .png")


@task(
    help={
        "task": "model to measure (default watch)",
        "only": "comma-separated sections (backbone, head, firmware, link, aggregator, demo, "
        "secagg, privacy)",
    }
)
def bench(c: Context, task: str = "watch", only: str = "") -> None:
    """Measure speed, memory and bytes into build/bench/bench.json and bench.md.

    Generated C vs the TFLM interpreter, Cortex-M4 instruction counts (unicorn), firmware
    size, link bytes and times, aggregator throughput, demo phases (docs/BENCHMARKS.md)."""
    from model_gen.freshness import ensure_trained
    from tools.bench.run import run

    ensure_trained(task)
    run(task, tuple(s for s in only.split(",") if s))


@task(
    help={
        "seconds": "fuzzing time per target (default 60)",
        "target": "decoder, device-replay or device-production (default: all three)",
        "seeds": "rewrite the seed corpus in tests/fuzz/corpus/ from tools/link first",
    }
)
def fuzz(c: Context, seconds: int = 60, target: str = "", seeds: bool = False) -> None:
    """Fuzz the frame decoder and the device message handler (libFuzzer, ASan/UBSan).

    Builds each target with clang -fsanitize=fuzzer,address,undefined, starts from
    tests/fuzz/corpus/<target>/, prints executions and crashes; crash inputs are kept in
    build/fuzz/<target>/crashes/ (add a fixed one to the corpus as a reproducer)."""
    from tools.fuzz.run import fuzz_targets

    if not fuzz_targets(seconds, [target] if target else [], rewrite_seeds=seeds):
        raise SystemExit(1)
