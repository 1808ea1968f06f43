"""Train only when the inputs changed: the pipeline's code, the task and its options.

`ensure_trained(task)` is what the demo and the test command call: on a fresh clone it trains
(and emits the C), on a warm tree whose model_gen sources are unchanged it returns at once.
The stamp lives beside the artifacts (build/model/<task>/train_inputs.sha256).
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from model_gen import paths

STAMP_NAME = "train_inputs.sha256"
# Packages whose version changes what training produces.
PINNED = ("tensorflow-cpu", "tflite-micro", "seglearn", "numpy")


def train_inputs_hash(task: str, options: dict[str, object]) -> str:
    digest = hashlib.sha256()
    source_root = Path(__file__).resolve().parent
    for path in sorted(source_root.rglob("*.py")):
        digest.update(str(path.relative_to(source_root)).encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps({"task": task, "options": options}, sort_keys=True).encode())
    for package in PINNED:
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()


def is_fresh(task: str, options: dict[str, object]) -> bool:
    folder = paths.model_dir(task)
    stamp = folder / STAMP_NAME
    needed = (paths.TFLITE_NAME, paths.HEAD_NAME, paths.CARD_NAME, paths.DEVICES_NAME)
    return (
        stamp.is_file()
        and all((folder / name).is_file() for name in needed)
        and stamp.read_text().strip() == train_inputs_hash(task, options)
    )


def ensure_trained(task: str = "watch", **options: object) -> bool:
    """Train and emit when the inputs changed; True when it trained."""
    from model_gen.cli import run_gen, run_train

    if is_fresh(task, options):
        run_gen(task)  # cheap: the emitter skips work when its own inputs are unchanged
        return False
    run_train(task, **options)  # also emits
    stamp = paths.model_dir(task) / STAMP_NAME
    stamp.write_text(train_inputs_hash(task, options) + "\n")
    return True
