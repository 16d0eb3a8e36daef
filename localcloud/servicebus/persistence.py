"""Optional on-disk state (SQLite) so that restarting the emulator loses no message.

Stores record changes here as they happen; the emulator calls `commit()` before it acknowledges
anything to a client (a send's disposition, a settlement's echo, a management reply), so an
acknowledged change survives a process restart. WAL mode with synchronous=NORMAL: durable
against a crash of the emulator process, not of the machine (this is a dev tool).

Locks are not persisted: after a restart, messages that were locked are available again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    store TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    enqueued REAL NOT NULL,
    expires REAL NOT NULL,
    delivery_count INTEGER NOT NULL,
    scheduled REAL,
    deferred INTEGER NOT NULL,
    extra TEXT,
    dl_source TEXT,
    PRIMARY KEY (store, seq)
);
CREATE TABLE IF NOT EXISTS counters (entity TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS duplicates (
    entity TEXT NOT NULL, message_id TEXT NOT NULL, seen REAL NOT NULL, PRIMARY KEY (entity, message_id)
);
"""


@dataclass(frozen=True)
class StoredRow:
    store: str
    seq: int
    payload: bytes
    enqueued: float
    expires: float
    delivery_count: int
    scheduled: float | None
    deferred: bool
    extra: dict[str, Any] | None
    dl_source: str | None


@dataclass
class Journal:
    path: Path
    _db: sqlite3.Connection = field(init=False)
    _rows: dict[tuple[str, int], StoredRow | None] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)
    _duplicates: dict[tuple[str, str], float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -- recording ----------------------------------------------------------------------------
    def put(self, row: StoredRow) -> None:
        self._rows[(row.store, row.seq)] = row

    def delete(self, store: str, seq: int) -> None:
        self._rows[(store, seq)] = None

    def counter(self, entity: str, next_seq: int) -> None:
        self._counters[entity] = next_seq

    def duplicate(self, entity: str, message_id: str, seen: float | None) -> None:
        """`seen=None` forgets the id (it left the detection window)."""
        self._duplicates[(entity, message_id)] = seen

    def commit(self) -> None:
        if not (self._rows or self._counters or self._duplicates):
            return
        rows, self._rows = self._rows, {}
        counters, self._counters = self._counters, {}
        dups, self._duplicates = self._duplicates, {}
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.store,
                        r.seq,
                        r.payload,
                        r.enqueued,
                        r.expires,
                        r.delivery_count,
                        r.scheduled,
                        int(r.deferred),
                        json.dumps(r.extra, default=str) if r.extra else None,
                        r.dl_source,
                    )
                    for r in rows.values()
                    if r is not None
                ],
            )
            db.executemany(
                "DELETE FROM messages WHERE store = ? AND seq = ?", [key for key, r in rows.items() if r is None]
            )
            db.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)", list(counters.items()))
            db.executemany(
                "INSERT OR REPLACE INTO duplicates VALUES (?, ?, ?)",
                [(e, m, seen) for (e, m), seen in dups.items() if seen is not None],
            )
            db.executemany(
                "DELETE FROM duplicates WHERE entity = ? AND message_id = ?",
                [key for key, seen in dups.items() if seen is None],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- loading ------------------------------------------------------------------------------
    def load_rows(self) -> list[StoredRow]:
        cursor = self._db.execute(
            "SELECT store, seq, payload, enqueued, expires, delivery_count, scheduled, deferred, extra, dl_source "
            "FROM messages ORDER BY store, seq"
        )
        return [
            StoredRow(
                store=row[0],
                seq=int(row[1]),
                payload=bytes(row[2]),
                enqueued=float(row[3]),
                expires=float(row[4]),
                delivery_count=int(row[5]),
                scheduled=row[6],
                deferred=bool(row[7]),
                extra=json.loads(row[8]) if row[8] else None,
                dl_source=row[9],
            )
            for row in cursor
        ]

    def load_counters(self) -> dict[str, int]:
        return {entity: int(n) for entity, n in self._db.execute("SELECT entity, next_seq FROM counters")}

    def load_duplicates(self) -> list[tuple[str, str, float]]:
        query = "SELECT entity, message_id, seen FROM duplicates ORDER BY seen"
        return [(e, m, float(s)) for e, m, s in self._db.execute(query)]

    def close(self) -> None:
        self.commit()
        self._db.close()
