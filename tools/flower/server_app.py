"""fedhead's rounds as a Flower ServerApp.

The round itself is tools/aggregator's: `FlowerAggregator` is an `Aggregator` whose only
difference is how a cohort's updates are collected — one Flower `train` message per board
(through its SuperNode and gateway bridge) instead of one thread per local serial port. Cohort
choice, budget check, validation, aggregation, central noise, server optimizer, accounting and
the SQLite commit are the very same code, so both engines release the same heads.

Boards enrolled with this aggregator (`invoke provision` against its store: table device_keys)
are driven through `query.relay` messages instead of `train`: the ServerApp builds their sealed
link frames itself and the gateway only relays them (tools/flower/relay.py), so the gateway
never sees a plaintext update nor holds a key. Boards the store does not know take the plain
`train` path (the gateway runs the device side of the round, tools/flower/bridge.py).

The run is described by a job file (JSON, written by `invoke aggregate --engine flower`) named
by the run config key `job`; it holds the AggregatorConfig, the store, the initial head and the
report folder, all on the SuperLink's machine (the ServerApp runs there).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from rich.console import Console

from tools.aggregator.config import AggregatorConfig
from tools.aggregator.core import Outcome, RoundEngine, RoundPlan
from tools.aggregator.evaluate import Holdout
from tools.aggregator.keys import KeyStore
from tools.aggregator.report import write_report
from tools.aggregator.run import _drive, _holdout, _initial_head
from tools.aggregator.secure import secure_round
from tools.aggregator.store import RoundRow, Store
from tools.flower.relay import (
    RELAY_ACTION,
    RELAY_RESENDS,
    Batch,
    RelayedExchange,
    RelayedLink,
    relay_record,
)
from tools.link import messages as m
from tools.link.client import FetchedUpdate, head_blob
from tools.link.errors import LinkError
from tools.link.messages import MessageError

REPLY_SLACK_S = 30.0  # ClientApp start-up and transfer, on top of the device deadline
QUERY_TIMEOUT_S = 30.0
PULL_EVERY_S = 1.0  # how often the ServerApp asks the SuperLink for a pending reply
SECAGG_NOT_ENROLLED = (
    "not enrolled with this aggregator: SecAgg runs over the authenticated link only; "
    "`invoke provision` the board against the aggregator's store"
)
RELAY_REPLY_TIMEOUT_S = 5.0  # the device's answer to each relayed request, at the bridge


@dataclass
class RemoteBoard:
    """A board behind a SuperNode: its device id is stable, its node id changes on rejoin."""

    device_id: int
    url: str
    node_id: int | None = None
    info: m.Info | None = None  # its latest INFO (profile, own ledger, head hash)
    refusal: str = ""  # why the RoundEngine does not admit it ("" when it may train)


@dataclass
class FlowerJob:
    """What `invoke aggregate --engine flower` hands the ServerApp (see the module docstring)."""

    config: dict[str, Any]
    store: str
    head_npz: str
    report_dir: str
    model_dir: str = ""
    boards: int = 1  # wait for this many SuperNodes before round 1
    join_timeout_s: float = 120.0
    reply_slack_s: float = REPLY_SLACK_S  # a reply may come this long after the device deadline
    enrollment: dict[str, str] = field(default_factory=dict)  # device id → user id
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.__dict__, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FlowerJob:
        return cls(**json.loads(Path(path).read_text()))


class FlowerAggregator(RoundEngine):
    """The aggregator's RoundEngine driven over Flower's Message API: plan_round, one `train`
    message per selected board, finish_round."""

    def __init__(
        self,
        store: Store,
        config: AggregatorConfig,
        grid: Grid,
        boards: list[RemoteBoard],
        initial_head: tuple[np.ndarray, np.ndarray] | None = None,
        holdout: Holdout | None = None,
        reply_slack_s: float = REPLY_SLACK_S,
        enrollment: dict[int, str] | None = None,
    ) -> None:
        super().__init__(store, config, initial_head, holdout, _console_events, enrollment)
        self.grid, self.reply_slack_s = grid, reply_slack_s
        self.keys = KeyStore(store.conn)  # server key and enrolled device keys (provision.py)
        self.links: dict[int, RelayedLink] = {}  # enrolled boards: their end of the link
        self.boards = {board.device_id: board for board in boards}
        for board in boards:
            self._admit(board)
        self.enroll_if_empty(list(self.boards))

    def _admit(self, board: RemoteBoard) -> None:
        """Record the board and decide, from its INFO, whether it may train (RoundEngine)."""
        if board.info is None:
            return
        self.store.record_device(
            board.device_id, board.url, board.info.board_name, board.info.model_sha256
        )
        board.refusal = self.admit_device(board.device_id, board.info)

    def run_round(self) -> RoundRow:
        """Plan, ask the selected boards through their SuperNodes, finish (as Aggregator)."""
        plan = self.plan_round()
        if self.grid is not None:
            for board in refresh_boards(self.grid, list(self.boards.values())):
                self.boards[board.device_id] = board
                self._admit(board)
        if self.config.secagg:  # the ServerApp sees only the sum (tools/aggregator/secure.py)
            trained = self._collect(plan, fetch=False)
            return self.finish_round(plan, *secure_round(self, plan, trained, self._exchange))
        return self.finish_round(plan, self._collect(plan))

    def _collect(self, plan: RoundPlan, fetch: bool = True) -> list[Outcome]:
        """Enrolled boards through the frame relay, the others with one `train` message.
        With fetch=False (SecAgg) only enrolled boards train, and only their UPDATE_READY
        comes back: the update leaves them masked, in the SecAgg round."""
        live = [d for d in plan.selected if self._reachable(d)]
        enrolled = [d for d in live if self.keys.device_key(d) is not None]
        plain = [d for d in live if d not in enrolled]
        if fetch:
            replies = self._collect_plain(plan, plain)
        else:
            replies = {d: Outcome(d, error=SECAGG_NOT_ENROLLED) for d in plain}
        replies.update(self._collect_relayed(plan, enrolled, fetch))
        wait_s = self.config.deadline_s + self.reply_slack_s
        outcomes = [self._missing_or(replies, d, wait_s) for d in plan.selected]
        for outcome in outcomes:
            if outcome.error:  # the operator's console (run log), never a published artifact
                self.on_event("device_error", {"device": outcome.device_id, "error": outcome.error})
        return outcomes

    def _reachable(self, device_id: int) -> bool:
        board = self.boards.get(device_id)
        return board is not None and board.node_id is not None and not board.refusal

    def _collect_plain(self, plan: RoundPlan, device_ids: list[int]) -> dict[int, Outcome]:
        content = ConfigRecord(
            {
                "head": head_blob(self.w, self.b),
                "rows": int(self.w.shape[0]),
                "cols": int(self.w.shape[1]),
                "head_version": self.head_version,
                "train": plan.train.pack(),
                "deadline_s": float(self.config.deadline_s),
            }
        )
        wait_s = self.config.deadline_s + self.reply_slack_s
        messages, by_node = [], {}
        for device_id in device_ids:
            board = self.boards[device_id]
            by_node[board.node_id] = board
            messages.append(
                Message(
                    RecordDict({"round": content}),
                    dst_node_id=board.node_id,
                    message_type="train",
                    ttl=wait_s,
                    group_id=str(plan.round),
                )
            )
        replies: dict[int, Outcome] = {}
        for reply in send_and_receive(self.grid, messages, wait_s) if messages else ():
            board = by_node.get(reply.metadata.src_node_id)
            if board is not None:
                replies[board.device_id] = self._outcome(board, reply)
        return replies

    # ---- enrolled boards: the authenticated link, relayed (tools/flower/relay.py) -------------

    def _link(self, device_id: int) -> RelayedLink:
        key = self.keys.device_key(device_id)
        assert key is not None
        link = self.links.get(device_id)
        if link is None or link.device_public != key.public_key:
            link = RelayedLink(device_id, key.public_key, self.keys.server_secret())
            self.links[device_id] = link
        return link

    def _collect_relayed(
        self, plan: RoundPlan, device_ids: list[int], fetch: bool = True
    ) -> dict[int, Outcome]:
        """HELLO + ENROLL_GET, then head + TRAIN (waiting for UPDATE_READY), then the chunks
        (fetch=False: not, the Outcome carries the UPDATE_READY only): three relays per board,
        each step sent to every board at once."""
        links = {d: self._link(d) for d in device_ids}
        failed: dict[int, Outcome] = {}

        def step(batches: dict[int, Batch], use: Callable[[int, Batch, list[bytes]], Any]) -> dict:
            results = {}
            for device_id, got in self._relay(batches).items():
                try:
                    if isinstance(got, str):
                        raise LinkError(got)
                    results[device_id] = use(device_id, batches[device_id], got)
                except (LinkError, ValueError) as exc:
                    failed[device_id] = Outcome(device_id, error=f"{type(exc).__name__}: {exc}")
            return results

        def admitted(device_id: int, batch: Batch, wires: list[bytes]) -> object:
            board = self.boards[device_id]
            board.info = links[device_id].start(batch, wires)
            self._admit(board)
            if board.refusal:
                raise ValueError(board.refusal)
            return board.info

        infos = step({d: link.hello_batch() for d, link in links.items()}, admitted)
        wait_s = float(self.config.deadline_s)
        deadline = time.monotonic() + wait_s
        train = {
            d: links[d].train_batch(info, self.w, self.b, self.head_version, plan.train, wait_s)
            for d, info in infos.items()
        }
        readies = step(train, lambda d, batch, wires: links[d].ready(batch, wires, plan.round))
        late = time.monotonic() > deadline
        if fetch:
            gets = {d: links[d].fetch_batch(ready) for d, ready in readies.items()}
            updates = step(gets, lambda d, batch, wires: links[d].update(batch, wires, readies[d]))
        else:
            updates = {d: FetchedUpdate(ready, b"", d) for d, ready in readies.items()}
        for device_id, update in updates.items():
            info = self.boards[device_id].info
            if info is not None and info.has(m.Capability.LEDGER):
                self.note_device_ledger(device_id, update.ready)
            failed[device_id] = Outcome(device_id, update, late=late)
        return failed

    def _exchange(self, device_ids: list[int]) -> RelayedExchange:
        """How a SecAgg round over `device_ids` reaches them (secure.secure_round)."""

        def dropped(device_id: int, error: str) -> None:
            self.on_event("device_error", {"device": device_id, "error": f"secagg: {error}"})

        return RelayedExchange({d: self.links[d] for d in device_ids}, self._relay, dropped)

    def _relay(self, batches: dict[int, Batch]) -> dict[int, list[bytes] | str]:
        """One `query.relay` message per board; device id → its frames, or why none came."""
        messages, by_node = [], {}
        longest = max((b.wait_s for b in batches.values()), default=0.0)
        wait_s = longest + RELAY_REPLY_TIMEOUT_S * (2 + RELAY_RESENDS) + self.reply_slack_s
        for device_id, batch in batches.items():
            node = self.boards[device_id].node_id
            if node is None:
                continue
            by_node[node] = device_id
            record = relay_record(batch, RELAY_REPLY_TIMEOUT_S)
            messages.append(
                Message(
                    RecordDict({"relay": ConfigRecord(record)}),
                    dst_node_id=node,
                    message_type=f"query.{RELAY_ACTION}",
                    ttl=wait_s,
                )
            )
        got: dict[int, list[bytes] | str] = {
            d: f"dropped: no reply from the gateway in {wait_s:.0f} s" for d in batches
        }
        for reply in send_and_receive(self.grid, messages, wait_s) if messages else ():
            device_id = by_node.get(reply.metadata.src_node_id)
            if device_id is None:
                continue
            if reply.has_error():
                got[device_id] = f"clientapp: {reply.error.reason}"
                continue
            record = reply.content["relayed"]
            if record["error"]:
                got[device_id] = str(record["error"])
            elif int(record["device_id"]) != device_id:
                got[device_id] = f"device_mismatch: answered as {record['device_id']}"
            else:
                got[device_id] = [bytes(f) for f in record["frames"]]
        return got

    def _missing_or(self, replies: dict[int, Outcome], device_id: int, wait_s: float) -> Outcome:
        if device_id in replies:
            return replies[device_id]
        board = self.boards.get(device_id)
        if board is None:
            return Outcome(device_id, error="not connected")
        if board.refusal:
            return Outcome(device_id, error=board.refusal)
        if board.node_id is None:
            return Outcome(device_id, error="offline: no SuperNode serves this board")
        return Outcome(
            device_id, error=f"dropped: no reply from node {board.node_id} in {wait_s} s"
        )

    def _outcome(self, board: RemoteBoard, reply: Message) -> Outcome:
        device_id = board.device_id
        if reply.has_error():
            return Outcome(device_id, error=f"clientapp: {reply.error.reason}")
        record = reply.content["update"]
        if int(record["device_id"]) != device_id:
            return Outcome(device_id, error=f"device_mismatch: answered as {record['device_id']}")
        info = bytes(record["info"])
        if info:  # the INFO the board sent before this TRAIN: admitted again (e.g. re-flashed)
            board.info = m.Info.unpack(info)
            self._admit(board)
            if board.refusal:
                return Outcome(device_id, error=board.refusal)
        if record["error"]:
            return Outcome(device_id, error=str(record["error"]))
        try:
            ready = m.UpdateReady.unpack(bytes(record["ready"]))
        except MessageError as exc:
            return Outcome(device_id, error=f"malformed: {exc}")
        if board.info is not None and board.info.has(m.Capability.LEDGER):
            self.note_device_ledger(device_id, ready)
        update = FetchedUpdate(ready, bytes(record["data"]), device_id)
        return Outcome(device_id, update, late=bool(record["late"]))


def send_and_receive(grid: Grid, messages: list[Message], timeout: float) -> list[Message]:
    """Grid.send_and_receive, except that each reply is pulled on its own thread, every
    PULL_EVERY_S, until `timeout`. Flower pulls all replies in one call that retries a reply's
    missing objects until the message expires: a gateway killed while uploading its reply (a
    SecAgg step, say) would hold up every other board's reply past the step's wait."""
    message_ids = list(grid.push_messages(messages))
    deadline = time.monotonic() + timeout
    replies: list[Message] = []

    def pull(message_id: str) -> None:
        while time.monotonic() < deadline:
            got = list(grid.pull_messages([message_id]))
            if got:
                replies.extend(got)
                return
            time.sleep(PULL_EVERY_S)

    threads = [threading.Thread(target=pull, args=(i,), daemon=True) for i in message_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return list(replies)  # a pull still stuck on a broken reply ends when its message expires


def _console_events(kind: str, detail: dict[str, Any]) -> None:
    """The run log (`flwr run` streams it): errors per board and each SecAgg round's outcome."""
    if kind == "device_error":
        Console().print(f"device {detail['device']}: {detail['error']}", highlight=False)
    elif kind == "secagg":
        Console().print(
            f"round {detail['round']}: SecAgg sum of {detail['in_sum']} boards, "
            f"{detail['recovered']} dropped out after sharing (masks removed via shares)",
            highlight=False,
        )
        Console().print(
            f"round {detail['round']}: sum sha256 {detail['sum_sha256']}", highlight=False
        )
    elif kind == "secagg_abort":
        Console().print(f"round {detail['round']}: {detail['reason']}", highlight=False)


def query_boards(grid: Grid, node_ids: list[int]) -> dict[int, RemoteBoard]:
    """Ask each node's bridge for its board (HELLO): node id → RemoteBoard."""
    messages = [
        Message(RecordDict({"query": ConfigRecord({})}), dst_node_id=n, message_type="query")
        for n in node_ids
    ]
    found = {}
    for reply in send_and_receive(grid, messages, QUERY_TIMEOUT_S):
        if reply.has_error():
            continue
        record = reply.content["board"]
        if record["error"]:
            continue
        node = reply.metadata.src_node_id
        info = m.Info.unpack(bytes(record["info"]))
        found[node] = RemoteBoard(int(record["device_id"]), str(record["url"]), node, info)
    return found


def refresh_boards(grid: Grid, boards: list[RemoteBoard]) -> list[RemoteBoard]:
    """Follow SuperNodes that left or (re)joined (a restarted gateway without node
    authentication gets a new node id); returns boards first seen now."""
    live = set(grid.get_node_ids())
    known = {b.node_id for b in boards if b.node_id is not None}
    for board in boards:
        if board.node_id not in live:
            board.node_id = None
    new = sorted(live - known)
    first_seen = []
    for node, found in query_boards(grid, new).items() if new else ():
        for board in boards:
            if board.device_id == found.device_id:
                board.node_id, board.url, board.info = node, found.url, found.info
                break
        else:
            first_seen.append(found)
    return first_seen


def wait_for_boards(grid: Grid, count: int, timeout: float) -> list[RemoteBoard]:
    """Wait until `count` SuperNodes answered with their board; sorted by device id, which is
    the order the built-in engine uses for its ports (same cohort choice, same sum order)."""
    deadline = time.monotonic() + timeout
    found: dict[int, RemoteBoard] = {}
    while True:
        live = sorted(set(grid.get_node_ids()) - set(found))
        if live:
            found.update(query_boards(grid, live))
        if len({b.device_id for b in found.values()}) >= count:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {len(found)} of {count} boards joined within {timeout:.0f} s: "
                "start their gateways (`invoke gateway`) or lower --boards"
            )
        time.sleep(1.0)
    unique = {b.device_id: b for b in found.values()}
    return [unique[d] for d in sorted(unique)]


def run_job(grid: Grid, job: FlowerJob) -> Path:
    """Run the job's rounds over `grid`; writes the same report files as the built-in engine."""
    console = Console()
    config = AggregatorConfig.from_dict(job.config)
    boards = wait_for_boards(grid, job.boards, job.join_timeout_s)
    console.print(f"boards: {[b.device_id for b in boards]}")
    store = Store(Path(job.store))
    try:
        aggregator = FlowerAggregator(
            store,
            config,
            grid,
            boards,
            initial_head=_initial_head(Path(job.head_npz)),
            holdout=_holdout(Path(job.model_dir)) if job.model_dir else None,
            reply_slack_s=job.reply_slack_s,
            enrollment={int(k): v for k, v in job.enrollment.items()} or None,
        )
        stopped = _drive(aggregator, config, console, progress=False)
        path = write_report(
            store, Path(job.report_dir), {"stopped": stopped, "engine": "flower", **job.extra}
        )
    finally:
        store.close()
    console.print(f"report: {path}")
    return path


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_job(grid, FlowerJob.load(str(context.run_config["job"])))
