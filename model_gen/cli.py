"""Entry points behind `invoke train` and `invoke gen` (option handling stays in tasks.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from model_gen import paths


def _task_name(task: str) -> str:
    return Path(task).stem if task.endswith((".npz", ".csv")) else task


def run_gen(task: str, force: bool = False) -> None:
    from model_gen.emit import EmitError, MissingModelError, emit

    name = _task_name(task)
    try:
        changed = emit(name, force=force)
    except (MissingModelError, EmitError) as err:
        sys.exit(f"error: {err}")
    where = paths.generated_dir(name)
    print(f"generated {where}" if changed else f"{where} is up to date")


def run_train(task: str, speakers: int | None = None) -> None:
    from model_gen.datasets import DataError
    from model_gen.tflite_info import UnsupportedModelError
    from model_gen.train import ModelBudgetError, train_task

    started = time.monotonic()
    options = {"speakers": speakers} if task == "kws" and speakers else {}
    try:
        card = train_task(task, **options)
    except (DataError, ModelBudgetError, UnsupportedModelError) as err:
        sys.exit(f"error: {err}")
    print(
        f"{card['task']}: float {card['float_acc']:.3f}  int8 TFLite "
        f"{card['int8_tflite_acc']:.3f}  int8 TFLM {card['int8_tflm_acc']:.3f} (held-out users)\n"
        f"backbone {card['backbone_bytes']} B, arena {card['arena_bytes']} B, "
        f"D={card['embedding_dim']}, C={card['num_classes']}, ops {', '.join(card['ops'])}\n"
        f"artifacts in {paths.model_dir(card['task'])}"
    )
    run_gen(card["task"])
    print(f"train {card['task']} took {time.monotonic() - started:.1f} s")
