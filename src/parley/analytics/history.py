"""Finished calls on disk: their metrics, turns, incidents and analytics (SQLite).

:class:`CallHistory` keeps one row per finished call (what :class:`~parley.metrics.
records.CallRecord` needs for cost totals, plus the call's summary as JSON), one row
per turn (the latency figures the dashboard's histograms read), one per incident
(context injections with their latency, errors, failovers) and, once the analytics
processor is done, its result. So the dashboard and ``GET /analytics/costs`` survive a
restart. Rows older than ``retention_days`` are deleted when the file is opened and
then at most once an hour.

Deliberately small and separate from the session store (``parley.store``): this is
the analytics' own file. It is the standard library's ``sqlite3`` — one connection
behind a lock, in WAL mode with a busy timeout so that several worker processes can
share the file. Every method blocks: callers on an event loop run them in a thread
(:class:`~parley.analytics.hub.AnalyticsHub` does, on one writer thread, in order).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.metrics.conversation_metrics import LATENCY_FIELDS, TurnFigures
from parley.metrics.cost import CostBreakdown
from parley.metrics.records import CallRecord

__all__ = ["CallHistory", "IncidentRow", "StoredCall"]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS calls (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    kind TEXT NOT NULL,
    engine TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    turns INTEGER NOT NULL,
    estimated_cost REAL,
    engagement REAL,
    cost TEXT NOT NULL,
    metrics TEXT NOT NULL,
    analytics TEXT,
    analytics_error TEXT
);
CREATE INDEX IF NOT EXISTS calls_ended ON calls (ended_at);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    ended_at REAL NOT NULL,
    engine TEXT NOT NULL,
    {", ".join(f"{f} REAL" for f in LATENCY_FIELDS)},
    PRIMARY KEY (session_id, idx)
);
CREATE INDEX IF NOT EXISTS turns_ended ON turns (ended_at);
CREATE TABLE IF NOT EXISTS incidents (
    session_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_at ON incidents (at);
"""

_PURGE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """A barge-in, error, failover or context injection (``value``: its latency, ms)."""

    session_id: str
    at: float  # wall clock
    kind: str
    detail: str
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class StoredCall:
    """What is kept of one finished call."""

    record: CallRecord
    kind: str
    engine: str
    metrics: Mapping[str, Any]  # the final summary, JSON-ready (no per-turn list)
    turns: Sequence[TurnFigures] = ()
    incidents: Sequence[IncidentRow] = ()
    #: Wall clock minus the meter's clock (``time.time() - time.monotonic()``): turns'
    #: times are the meter's.
    clock_offset: float = 0.0


def _cost_json(cost: CostBreakdown) -> str:
    return json.dumps(
        {
            "realtime": cost.realtime,
            "llm": cost.llm,
            "stt": cost.stt,
            "tts": cost.tts,
            "telephony": cost.telephony,
            "cpu_seconds": dict(cost.cpu_seconds),
            "unpriced": list(cost.unpriced),
        }
    )


def _cost(text: str) -> CostBreakdown:
    d = json.loads(text)
    return CostBreakdown(
        realtime=d["realtime"],
        llm=d["llm"],
        stt=d["stt"],
        tts=d["tts"],
        telephony=d["telephony"],
        cpu_seconds=d["cpu_seconds"],
        unpriced=tuple(d["unpriced"]),
    )


class CallHistory:
    """The SQLite file at ``path`` (created with its folder if missing)."""

    def __init__(self, path: str | Path, *, retention_days: float = 30.0) -> None:
        self.path = Path(path)
        self.retention_s = retention_days * 86400.0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._purged_at = 0.0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def open(self) -> None:
        """Create the file and tables and apply the retention now."""
        with self._lock:
            self._conn()
        self.purge()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- writes ---------------------------------------------------------------------------

    def save(self, call: StoredCall) -> None:
        r = call.record
        m = call.metrics
        with self._lock:
            db = self._conn()
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO calls (session_id, user_id, tier, kind, engine,"
                    " started_at, ended_at, turns, estimated_cost, engagement, cost, metrics)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.session_id,
                        r.user_id,
                        r.tier,
                        call.kind,
                        call.engine,
                        r.started_at,
                        r.ended_at,
                        r.turns,
                        m.get("estimated_cost"),
                        r.engagement_score,
                        _cost_json(r.cost),
                        json.dumps(m),
                    ),
                )
                db.executemany(
                    f"INSERT OR REPLACE INTO turns (session_id, idx, ended_at, engine,"
                    f" {', '.join(LATENCY_FIELDS)}) VALUES (?, ?, ?, ?,"
                    f" {', '.join('?' for _ in LATENCY_FIELDS)})",
                    [
                        (
                            r.session_id,
                            t.index,
                            t.ended_at + call.clock_offset,
                            t.engine,
                            *(getattr(t, f) for f in LATENCY_FIELDS),
                        )
                        for t in call.turns
                    ],
                )
                db.executemany(
                    "INSERT INTO incidents (session_id, at, kind, detail, value)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(i.session_id, i.at, i.kind, i.detail, i.value) for i in call.incidents],
                )
        if time.time() - self._purged_at > _PURGE_EVERY_S:
            self.purge()

    def save_analytics(
        self, session_id: str, result: Mapping[str, Any] | None, error: str | None
    ) -> None:
        with self._lock:
            db = self._conn()
            with db:
                db.execute(
                    "UPDATE calls SET analytics = ?, analytics_error = ? WHERE session_id = ?",
                    (json.dumps(result) if result is not None else None, error, session_id),
                )

    def purge(self, now: float | None = None) -> int:
        """Delete what is older than the retention; how many calls went."""
        now = time.time() if now is None else now
        cutoff = now - self.retention_s
        with self._lock:
            db = self._conn()
            with db:
                gone = db.execute("DELETE FROM calls WHERE ended_at < ?", (cutoff,)).rowcount
                db.execute("DELETE FROM turns WHERE ended_at < ?", (cutoff,))
                db.execute("DELETE FROM incidents WHERE at < ?", (cutoff,))
        self._purged_at = now
        return int(gone)

    # -- reads ----------------------------------------------------------------------------

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            db = self._conn()
            cur = db.execute(sql, tuple(args))
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def records(self, since: float | None = None, until: float | None = None) -> list[CallRecord]:
        """The finished calls started in [since, until), as cost records."""
        rows = self._rows(
            "SELECT session_id, user_id, tier, started_at, ended_at, cost, engagement, turns"
            " FROM calls WHERE started_at >= ? AND started_at < ? ORDER BY started_at",
            (since if since is not None else float("-inf"), until or float("inf")),
        )
        return [
            CallRecord(
                session_id=r["session_id"],
                user_id=r["user_id"],
                tier=r["tier"],
                started_at=r["started_at"],
                ended_at=r["ended_at"],
                cost=_cost(r["cost"]),
                engagement_score=r["engagement"],
                turns=r["turns"],
            )
            for r in rows
        ]

    def recent(self, limit: int = 50, since: float | None = None) -> list[dict[str, Any]]:
        """The newest finished calls (a row each: ids, times, cost, engagement, analytics)."""
        rows = self._rows(
            "SELECT session_id, user_id, tier, kind, engine, started_at, ended_at, turns,"
            " estimated_cost, engagement, analytics, analytics_error FROM calls"
            " WHERE ended_at >= ? ORDER BY ended_at DESC LIMIT ?",
            (since if since is not None else float("-inf"), limit),
        )
        for r in rows:
            r["analytics"] = json.loads(r["analytics"]) if r["analytics"] else None
        return rows

    def get(self, session_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM calls WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        r = rows[0]
        r["cost"] = json.loads(r["cost"])
        r["metrics"] = json.loads(r["metrics"])
        r["analytics"] = json.loads(r["analytics"]) if r["analytics"] else None
        return r

    def latencies(self, since: float | None = None, limit: int = 20_000) -> dict[str, list[float]]:
        """Each latency figure of the newest ``limit`` turns since ``since`` (ms)."""
        rows = self._rows(
            f"SELECT {', '.join(LATENCY_FIELDS)} FROM turns WHERE ended_at >= ?"
            " ORDER BY ended_at DESC LIMIT ?",
            (since if since is not None else float("-inf"), limit),
        )
        return {f: [r[f] for r in rows if r[f] is not None] for f in LATENCY_FIELDS}

    def incidents(self, since: float | None = None, limit: int = 5000) -> list[IncidentRow]:
        rows = self._rows(
            "SELECT session_id, at, kind, detail, value FROM incidents WHERE at >= ?"
            " ORDER BY at DESC LIMIT ?",
            (since if since is not None else float("-inf"), limit),
        )
        return [IncidentRow(**r) for r in rows]
