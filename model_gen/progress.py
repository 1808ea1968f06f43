"""A quiet Keras progress bar: one rich bar for the whole fit, metrics in its description."""

from __future__ import annotations

import keras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichProgress(keras.callbacks.Callback):
    def __init__(self, title: str) -> None:
        super().__init__()
        self._title = title
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        )
        self._bar = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        epochs, steps = self.params.get("epochs", 1), self.params.get("steps") or 1
        self._progress.start()
        self._bar = self._progress.add_task(self._title, total=epochs * steps)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._progress.advance(self._bar)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        shown = " ".join(f"{k}={v:.3f}" for k, v in logs.items() if "loss" in k or "acc" in k)
        self._progress.update(self._bar, description=f"{self._title} epoch {epoch + 1} {shown}")

    def on_train_end(self, logs: dict | None = None) -> None:
        self._progress.stop()
