"""SQLite store (WAL): one transaction per committed round.

A round is written all at once — its row, every update's protocol metadata (accepted or
rejected with the reason; accepted ones with their q bytes), the new head when one was
released, the accountant event — so a crash leaves either the whole round or none of it. A
restart resumes after the last committed round.

What is kept is what resuming and auditing the accountant need: the enrollment (device →
user), heads, the ledger, per round who was selected and which updates arrived (for the
per-device ε against the aggregator). No training statistics (loss, accuracy, example counts)
are stored. The store is operator-only: it holds the updates as the aggregator saw them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.aggregator.privacy import RoundEvent
from tools.link.client import head_blob

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enrollment (
    device_id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, enrolled REAL NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id INTEGER PRIMARY KEY, url TEXT, board TEXT, model_sha256 BLOB,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS heads (
    version INTEGER PRIMARY KEY, sha256 BLOB NOT NULL, blob BLOB NOT NULL,
    embed_dim INTEGER NOT NULL, num_classes INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, head_in INTEGER NOT NULL REFERENCES heads(version),
    head_out INTEGER NOT NULL REFERENCES heads(version), started REAL NOT NULL,
    committed REAL NOT NULL, cohort TEXT NOT NULL, accepted INTEGER NOT NULL,
    rejected INTEGER NOT NULL, dropped INTEGER NOT NULL, epsilon REAL NOT NULL,
    metrics TEXT NOT NULL, server_state BLOB, outcome TEXT NOT NULL,
    device_noise_std REAL NOT NULL);
CREATE TABLE IF NOT EXISTS updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, round INTEGER NOT NULL REFERENCES rounds(round),
    device_id INTEGER NOT NULL, accepted INTEGER NOT NULL, reason TEXT NOT NULL,
    bits INTEGER, scale REAL, flags INTEGER, crc32 INTEGER, q BLOB);
CREATE UNIQUE INDEX IF NOT EXISTS one_accepted_per_device
    ON updates(round, device_id) WHERE accepted = 1;
CREATE TABLE IF NOT EXISTS device_profiles (
    device_id INTEGER PRIMARY KEY, profile TEXT NOT NULL, epsilon_spent REAL,
    epsilon_budget REAL, releases INTEGER, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS accountant (
    round INTEGER PRIMARY KEY REFERENCES rounds(round), sampling_q REAL NOT NULL,
    noise_multiplier REAL NOT NULL, truncation REAL NOT NULL DEFAULT 0);
"""


class StoreVersionError(RuntimeError):
    """The store file predates this schema and cannot be resumed."""


@dataclass
class UpdateRow:
    device_id: int
    accepted: bool
    reason: str
    bits: int = 0
    scale: float = 0.0
    flags: int = 0
    crc32: int = 0
    q: bytes | None = None  # kept for accepted updates: nothing accepted is ever lost


@dataclass
class RoundRow:
    round: int
    head_in: int
    head_out: int
    started: float
    cohort: list[int]  # selected device ids: stored, never published
    updates: list[UpdateRow]
    dropped: int
    epsilon: float
    metrics: dict[str, Any] = field(default_factory=dict)
    event: RoundEvent | None = None
    server_state: bytes | None = None
    outcome: str = "released"  # "released", "empty", "too_few" or "refused" (over budget)
    device_noise_std: float = 0.0  # σ each device was asked to add (Δ units)


class Store:
    """The aggregator's durable state. Open with `Store(path)`; `close()` when done."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # a committed round survives power loss
        self.conn.execute("PRAGMA foreign_keys=ON")
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(rounds)")}
        if columns and "outcome" not in columns:  # checked before touching the file
            self.conn.close()
            raise StoreVersionError(
                f"{self.path} was written by an older fedhead (rounds without outcome, no "
                "enrollment): its ε was accounted differently; move it away or pass --store"
            )
        self.conn.executescript(SCHEMA)
        accountant = {row[1] for row in self.conn.execute("PRAGMA table_info(accountant)")}
        if "truncation" not in accountant:  # stores from before the cohort cap: nothing capped
            self.conn.execute(
                "ALTER TABLE accountant ADD COLUMN truncation REAL NOT NULL DEFAULT 0"
            )

    def close(self) -> None:
        self.conn.close()

    # ---- reads --------------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def last_round(self) -> int:
        row = self.conn.execute("SELECT MAX(round) FROM rounds").fetchone()
        return int(row[0] or 0)

    def latest_head(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        row = self.conn.execute(
            "SELECT version, blob, embed_dim, num_classes FROM heads ORDER BY version DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (row[0], *_unpack_head(row[1], row[2], row[3]))

    def head(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.conn.execute(
            "SELECT blob, embed_dim, num_classes FROM heads WHERE version=?", (version,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no head version {version} in {self.path}")
        return _unpack_head(*row)

    def events(self) -> list[RoundEvent]:
        rows = self.conn.execute(
            "SELECT sampling_q, noise_multiplier, truncation FROM accountant ORDER BY round"
        ).fetchall()
        return [RoundEvent(q, z, t) for q, z, t in rows]

    def server_state(self) -> bytes | None:
        row = self.conn.execute(
            "SELECT server_state FROM rounds ORDER BY round DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def enrollment(self) -> dict[int, str]:
        """device id → user id of every registered device."""
        rows = self.conn.execute("SELECT device_id, user_id FROM enrollment ORDER BY device_id")
        return {int(d): str(u) for d, u in rows}

    def rounds(self) -> list[dict[str, Any]]:
        """Operator view of every round (selection and counts included: not for publishing)."""
        cursor = self.conn.execute(
            "SELECT round, head_in, head_out, started, committed, cohort, accepted, rejected, "
            "dropped, epsilon, metrics, outcome, device_noise_std FROM rounds ORDER BY round"
        )
        names = [d[0] for d in cursor.description]
        out = []
        for row in cursor.fetchall():
            record = dict(zip(names, row, strict=True))
            record["cohort"] = json.loads(record["cohort"])
            record["metrics"] = json.loads(record["metrics"])
            out.append(record)
        return out

    def received_noise_by_device(self) -> dict[int, list[float]]:
        """For each device, the noise std of every update the aggregator received from it
        (accepted or not: the aggregator saw it either way)."""
        rows = self.conn.execute(
            "SELECT u.device_id, r.device_noise_std FROM updates u JOIN rounds r "
            "ON u.round = r.round ORDER BY u.id"
        )
        out: dict[int, list[float]] = {}
        for device_id, sigma in rows:
            out.setdefault(int(device_id), []).append(float(sigma))
        return out

    def sums_by_round(self) -> dict[int, tuple[float, list[int]]]:
        """Per round with accepted updates: (σ each device was asked to add, the devices whose
        update is in the round's sum). With SecAgg these are the sums the aggregator saw."""
        rows = self.conn.execute(
            "SELECT u.round, r.device_noise_std, u.device_id FROM updates u JOIN rounds r "
            "ON u.round = r.round WHERE u.accepted = 1 ORDER BY u.round, u.id"
        )
        out: dict[int, tuple[float, list[int]]] = {}
        for round_id, sigma, device_id in rows:
            out.setdefault(int(round_id), (float(sigma), []))[1].append(int(device_id))
        return out

    def updates(self, round_id: int, accepted_only: bool = False) -> list[UpdateRow]:
        sql = (
            "SELECT device_id, accepted, reason, bits, scale, flags, "
            "crc32, q FROM updates WHERE round=?"
            + (" AND accepted=1" if accepted_only else "")
            + " ORDER BY id"
        )
        return [UpdateRow(r[0], bool(r[1]), *r[2:]) for r in self.conn.execute(sql, (round_id,))]

    # ---- writes -------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def ensure_initial_head(self, w: np.ndarray, b: np.ndarray, version: int = 0) -> None:
        if self.latest_head() is None:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._insert_head(version, w, b)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def enroll(self, mapping: dict[int, str]) -> None:
        """Register devices (device id → user id); re-enrolling a device moves it."""
        now = time.time()
        with self.conn:
            self.conn.executemany(
                "INSERT INTO enrollment VALUES (?, ?, ?) ON CONFLICT(device_id) DO UPDATE "
                "SET user_id=excluded.user_id, enrolled=excluded.enrolled",
                [(int(d), str(u), now) for d, u in mapping.items()],
            )

    def record_device(self, device_id: int, url: str, board: str, model_sha256: bytes) -> None:
        now = time.time()
        with self.conn:
            self.conn.execute(
                "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE "
                "SET url=excluded.url, board=excluded.board, "
                "model_sha256=excluded.model_sha256, last_seen=excluded.last_seen",
                (device_id, url, board, model_sha256, now, now),
            )

    def record_profile(
        self,
        device_id: int,
        profile: str,
        epsilon_spent: float,
        epsilon_budget: float,
        releases: int,
    ) -> None:
        """The build profile a device announced and its own ledger (INFO), as last seen."""
        with self.conn:
            self.conn.execute(
                "INSERT INTO device_profiles VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id) "
                "DO UPDATE SET profile=excluded.profile, epsilon_spent=excluded.epsilon_spent, "
                "epsilon_budget=excluded.epsilon_budget, releases=excluded.releases, "
                "last_seen=excluded.last_seen",
                (device_id, profile, epsilon_spent, epsilon_budget, releases, time.time()),
            )

    def device_profiles(self) -> list[dict[str, Any]]:
        """Every device seen: its profile and its own ledger (ε spent at its δ, releases)."""
        rows = self.conn.execute(
            "SELECT device_id, profile, epsilon_spent, epsilon_budget, releases "
            "FROM device_profiles ORDER BY device_id"
        ).fetchall()
        keys = (
            "device_id",
            "profile",
            "device_epsilon_spent",
            "device_epsilon_budget",
            "device_releases",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def commit_round(self, row: RoundRow, new_head: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Write the whole round in one transaction (or nothing, if anything fails)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if new_head is not None:
                self._insert_head(row.head_out, *new_head)
            accepted = sum(u.accepted for u in row.updates)
            self.conn.execute(
                "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.round,
                    row.head_in,
                    row.head_out,
                    row.started,
                    time.time(),
                    json.dumps(row.cohort),
                    accepted,
                    len(row.updates) - accepted,
                    row.dropped,
                    row.epsilon,
                    json.dumps(row.metrics),
                    row.server_state,
                    row.outcome,
                    row.device_noise_std,
                ),
            )
            self.conn.executemany(
                "INSERT INTO updates (round, device_id, accepted, reason, bits, "
                "scale, flags, crc32, q) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        row.round,
                        u.device_id,
                        int(u.accepted),
                        u.reason,
                        u.bits,
                        u.scale,
                        u.flags,
                        u.crc32,
                        u.q,
                    )
                    for u in row.updates
                ],
            )
            if row.event is not None:
                self.conn.execute(
                    "INSERT INTO accountant VALUES (?, ?, ?, ?)",
                    (
                        row.round,
                        row.event.sampling_q,
                        row.event.noise_multiplier,
                        row.event.truncation,
                    ),
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _insert_head(self, version: int, w: np.ndarray, b: np.ndarray) -> None:
        blob = head_blob(w, b)
        self.conn.execute(
            "INSERT INTO heads VALUES (?, ?, ?, ?, ?, ?)",
            (version, hashlib.sha256(blob).digest(), blob, *np.shape(w), time.time()),
        )

    # ---- integrity ----------------------------------------------------------------------------

    def integrity_check(self) -> list[str]:
        """Problems found (empty list = healthy): SQLite's own check, foreign keys, round
        numbering, head hashes, per-round counts, accountant rows, accepted q present."""
        problems = [r[0] for r in self.conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {r}" for r in self.conn.execute("PRAGMA foreign_key_check")]
        for version, sha, blob in self.conn.execute("SELECT version, sha256, blob FROM heads"):
            if hashlib.sha256(blob).digest() != sha:
                problems.append(f"head {version}: sha256 does not match its blob")
        rounds = self.rounds()
        numbers = [r["round"] for r in rounds]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"rounds are not 1..N without gaps: {numbers}")
        has_events = {r for (r,) in self.conn.execute("SELECT round FROM accountant")}
        accounted = (self.get_meta("config") or {}).get("privacy", "none") != "none"
        for r in rounds:
            released = r["outcome"] == "released"
            if r["round"] in has_events and not released:
                problems.append(f"round {r['round']}: charged although nothing was released")
            problems += self._round_problems(
                r, accounted and released and r["round"] not in has_events
            )
        return problems

    def _round_problems(self, r: dict[str, Any], missing_event: bool) -> list[str]:
        problems = []
        ups = self.updates(r["round"])
        accepted = [u for u in ups if u.accepted]
        if len(accepted) != r["accepted"] or len(ups) - len(accepted) != r["rejected"]:
            problems.append(f"round {r['round']}: update counts differ from the round row")
        if any(u.q is None for u in accepted):
            problems.append(f"round {r['round']}: an accepted update lost its values")
        if missing_event:
            problems.append(f"round {r['round']}: no accountant event")
        return problems


def _unpack_head(blob: bytes, d: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.frombuffer(blob, dtype="<f4")
    return values[: d * c].reshape(d, c).copy(), values[d * c :].copy()
