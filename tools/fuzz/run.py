"""`invoke fuzz`: fuzz each target for a while and print executions and crashes."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tools.fuzz.build import TARGETS, FuzzResult, run
from tools.fuzz.seeds import write_seeds


def fuzz_targets(seconds: int, targets: list[str], rewrite_seeds: bool = False) -> bool:
    """Fuzz `targets` (all when empty) for `seconds` each; True when nothing crashed."""
    console = Console()
    if rewrite_seeds:
        for name, count in write_seeds().items():
            console.print(f"{name}: {count} seed inputs written")
    results: list[FuzzResult] = []
    for target in targets or list(TARGETS):
        with console.status(f"fuzzing {target} for {seconds} s (ASan/UBSan)"):
            results.append(run(target, seconds))
    table = Table("target", "seconds", "executions", "exec/s", "corpus", "crashes")
    for r in results:
        table.add_row(
            r.target,
            str(r.seconds),
            f"{r.executions:,}",
            f"{r.executions / max(r.seconds, 1):,.0f}",
            str(r.corpus_units),
            str(len(r.crashes)),
        )
    console.print(table)
    for r in results:
        for crash in r.crashes:
            console.print(f"[red]{r.target}: crash input {crash}[/red]\n{r.log_tail}")
    return all(r.ok for r in results)
