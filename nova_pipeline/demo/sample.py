"""The Nova Universe sample: a deterministic SQLite database shaped like the
Node.js app that outgrew SQLite (RBAC core, kiosks, passkeys, drones and
missions, partitioned drone telemetry, and the log/analytics tables that move
to MongoDB).

It carries the quirks real SQLite apps accumulate, all drawn from the seed:
DATETIME columns mixing 'YYYY-MM-DD HH:MM:SS', ISO 8601 with 'T'/'Z', epoch
seconds and epoch milliseconds; BOOLEAN columns with 0/1 and a few
'true'/'false' strings; JSON in TEXT columns; NULLs; accented, CJK and emoji
names; BLOB credentials; full-precision REAL coordinates; a WITHOUT ROWID
join table; and exactly `BAD_ROWS` rows that cannot be cast faithfully, so a
migration shows its quarantine.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import adbc_driver_sqlite.dbapi as adbc_sqlite
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TELEMETRY_START = datetime(2024, 1, 1, tzinfo=UTC)
TELEMETRY_DAYS = 35  # 2024-01-01 … 2024-02-04: ≥ 30 daily partitions, crosses a month boundary at every scale
CHUNK_ROWS = 100_000
MIN_ROWS = 20

# Rows per scaled table at scale 1.0 (≈ 43 k rows in all). scale=50 gives the
# benchmark shape of ≈ 2.16 M rows: 1 M drone_telemetry, 500 k audit_logs,
# 300 k system_logs, 200 k notifications, 50 k users, the rest ≈ 116 k.
BASE_ROWS = {
    "users": 1_000,
    "kiosks": 10,
    "notifications": 4_000,
    "passkeys": 100,
    "assets": 100,
    "drones": 10,
    "missions": 40,
    "drone_telemetry": 20_000,
    "audit_logs": 10_000,
    "system_logs": 6_000,
    "user_activity": 200,
    "performance_metrics": 200,
    "error_logs": 60,
    "api_usage": 200,
    "search_analytics": 100,
}
WAYPOINTS_PER_MISSION = 5

# (table, column, id of the row, raw value): values no faithful cast accepts.
BAD_VALUES = (
    ("notifications", "created_at", 7, "2025-02-30 08:15:00"),
    ("notifications", "priority", 11, "n/a"),
    ("audit_logs", "details", 13, '{"ip": "10.0.0.13", "reason": '),
)
BAD_ROWS = {"notifications": 2, "audit_logs": 1}

ROLES = (  # name, parent role name, is_system
    ("admin", None, 1), ("manager", "admin", 1), ("technician", "manager", 1), ("operator", "manager", 1),
    ("pilot", "operator", 0), ("analyst", "manager", 0), ("viewer", None, 1), ("kiosk", None, 1),
)
RESOURCES = ("users", "roles", "config", "kiosks", "assets", "notifications", "drones", "missions", "telemetry", "audit")
ACTIONS = ("read", "write", "delete")
_ROLE_GRANTS = {  # role → (resources, actions) it is granted
    "admin": (RESOURCES, ACTIONS),
    "manager": (RESOURCES, ("read", "write")),
    "technician": (("kiosks", "assets", "drones"), ("read", "write")),
    "operator": (("drones", "missions", "telemetry"), ("read", "write")),
    "pilot": (("drones", "missions", "telemetry"), ("read",)),
    "analyst": (("telemetry", "audit", "missions"), ("read",)),
    "viewer": (("assets", "notifications"), ("read",)),
    "kiosk": (("kiosks", "notifications"), ("read",)),
}
PRIMARY_ROLE_CYCLE = (2, 3, 4, 5, 7, 8)  # role ids given to users 2…n in turn; user 1 is admin
EXTRA_ROLE = 6  # analyst, additionally granted to every tenth user

CONFIG = (  # key, value, type, is_secret
    ("site.name", "Nova Universe", "string", 0), ("site.locale", "fr-CA", "string", 0),
    ("site.timezone", "America/Toronto", "string", 0), ("auth.session_ttl_minutes", "480", "number", 0),
    ("auth.passkeys_enabled", "true", "boolean", 0), ("auth.password_min_length", "12", "number", 0),
    ("auth.jwt_secret", "s3cr3t-rotated-2023-11", "string", 1), ("mail.smtp_host", "smtp.nova.example", "string", 0),
    ("mail.from", "Nova Universe <noreply@nova.example>", "string", 0),
    ("kiosk.heartbeat_seconds", "30", "number", 0), ("kiosk.theme", '{"primary":"#0b5fff","logo":"nova.svg"}', "json", 0),
    ("drones.max_altitude_m", "120", "number", 0), ("drones.geofence", '{"type":"Polygon","coordinates":[]}', "json", 0),
    ("telemetry.retention_days", "365", "number", 0), ("logs.level", "info", "string", 0),
    ("feature.ai_assistant", "false", "boolean", 0),
)

SCHEMA = """
CREATE TABLE roles (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name VARCHAR(64) NOT NULL UNIQUE,
  description TEXT,
  parent_role_id INTEGER REFERENCES roles(id) ON DELETE SET NULL,
  is_system BOOLEAN NOT NULL DEFAULT 0,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE permissions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name VARCHAR(100) NOT NULL UNIQUE,
  resource VARCHAR(50) NOT NULL,
  action VARCHAR(20) NOT NULL,
  description TEXT,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL,
  email VARCHAR(255) NOT NULL,
  name TEXT NOT NULL,
  password_hash TEXT,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  is_admin BOOLEAN DEFAULT 0,
  manager_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
  settings TEXT DEFAULT '{}',
  last_login DATETIME,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at DATETIME
);
CREATE TABLE user_roles (
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
  assigned_by INTEGER REFERENCES users(id),
  assigned_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (user_id, role_id)
);
CREATE TABLE role_permissions (
  role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
  permission_id INTEGER NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
  granted_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (role_id, permission_id)
) WITHOUT ROWID;
CREATE TABLE config (
  key TEXT PRIMARY KEY,
  value TEXT,
  type VARCHAR(20) NOT NULL DEFAULT 'string',
  is_secret BOOLEAN DEFAULT 0,
  updated_by INTEGER REFERENCES users(id),
  updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE kiosks (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  location TEXT,
  status VARCHAR(20) NOT NULL DEFAULT 'offline',
  is_active BOOLEAN DEFAULT 1,
  version VARCHAR(20),
  config TEXT,
  registered_by INTEGER REFERENCES users(id),
  last_seen DATETIME,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  type VARCHAR(50) NOT NULL,
  title TEXT NOT NULL,
  message TEXT,
  priority INTEGER DEFAULT 0,
  is_read BOOLEAN DEFAULT 0,
  payload TEXT,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  read_at DATETIME
);
CREATE TABLE passkeys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  credential_id BLOB NOT NULL,
  public_key BLOB NOT NULL,
  sign_count INTEGER NOT NULL DEFAULT 0,
  transports TEXT,
  name TEXT,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  last_used_at DATETIME
);
CREATE TABLE assets (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  asset_tag VARCHAR(32) NOT NULL UNIQUE,
  name TEXT NOT NULL,
  type VARCHAR(30),
  status VARCHAR(20) DEFAULT 'active',
  assigned_to INTEGER REFERENCES users(id) ON DELETE SET NULL,
  kiosk_id TEXT REFERENCES kiosks(id),
  purchase_date DATE,
  purchase_cost REAL,
  metadata TEXT,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  updated_at DATETIME
);
CREATE TABLE directory_integrations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  provider VARCHAR(30) NOT NULL,
  name TEXT NOT NULL,
  enabled BOOLEAN DEFAULT 0,
  config TEXT,
  last_sync_at DATETIME,
  created_by INTEGER REFERENCES users(id),
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE sso_configurations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  provider VARCHAR(20) NOT NULL,
  name TEXT NOT NULL,
  enabled BOOLEAN DEFAULT 0,
  entity_id TEXT,
  metadata_url TEXT,
  client_id TEXT,
  settings TEXT,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  updated_at DATETIME
);
CREATE TABLE drones (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  serial_number VARCHAR(40) NOT NULL UNIQUE,
  name TEXT NOT NULL,
  model VARCHAR(60),
  type VARCHAR(30),
  status VARCHAR(20) NOT NULL DEFAULT 'idle',
  is_armed BOOLEAN DEFAULT 0,
  home_latitude REAL,
  home_longitude REAL,
  max_altitude_m REAL,
  battery_capacity_mah INTEGER,
  firmware_version VARCHAR(20),
  owner_id INTEGER REFERENCES users(id),
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
  last_seen_at DATETIME
);
CREATE TABLE missions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  drone_id INTEGER NOT NULL REFERENCES drones(id),
  commander_id INTEGER REFERENCES users(id),
  status VARCHAR(20) NOT NULL DEFAULT 'planned',
  threat_level INTEGER DEFAULT 1,
  objective TEXT,
  parameters TEXT,
  scheduled_start DATETIME,
  started_at DATETIME,
  completed_at DATETIME,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE mission_waypoints (
  mission_id INTEGER NOT NULL REFERENCES missions(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  latitude REAL NOT NULL,
  longitude REAL NOT NULL,
  altitude_m REAL,
  action VARCHAR(20) DEFAULT 'fly',
  hold_seconds INTEGER DEFAULT 0,
  PRIMARY KEY (mission_id, seq)
);
CREATE TABLE drone_telemetry (
  id INTEGER PRIMARY KEY,
  drone_id INTEGER NOT NULL REFERENCES drones(id),
  mission_id INTEGER REFERENCES missions(id),
  recorded_at DATETIME NOT NULL,
  latitude REAL NOT NULL,
  longitude REAL NOT NULL,
  altitude_m REAL,
  battery_percentage REAL,
  ground_speed_ms REAL,
  heading_deg REAL,
  signal_strength INTEGER,
  status VARCHAR(20),
  sensors TEXT
);
CREATE TABLE audit_logs (
  id INTEGER PRIMARY KEY,
  user_id INTEGER,
  action VARCHAR(50) NOT NULL,
  entity_type VARCHAR(50),
  entity_id TEXT,
  ip_address VARCHAR(45),
  user_agent TEXT,
  details TEXT,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE system_logs (
  id INTEGER PRIMARY KEY,
  level VARCHAR(10) NOT NULL,
  service VARCHAR(50),
  message TEXT NOT NULL,
  context TEXT,
  hostname TEXT,
  pid INTEGER,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE user_activity (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER NOT NULL,
  session_id TEXT,
  activity VARCHAR(50) NOT NULL,
  page TEXT,
  metadata TEXT,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE performance_metrics (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service VARCHAR(50) NOT NULL,
  metric VARCHAR(50) NOT NULL,
  endpoint TEXT,
  value REAL NOT NULL,
  unit VARCHAR(10),
  tags TEXT,
  recorded_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE error_logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  error_code VARCHAR(50),
  message TEXT NOT NULL,
  stack_trace TEXT,
  user_id INTEGER,
  request_path TEXT,
  is_resolved BOOLEAN DEFAULT 0,
  metadata TEXT,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE api_usage (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER,
  api_key_id TEXT,
  method VARCHAR(10) NOT NULL,
  endpoint TEXT NOT NULL,
  status_code INTEGER NOT NULL,
  response_time_ms REAL,
  request_size INTEGER,
  response_size INTEGER,
  ip_address VARCHAR(45),
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE search_analytics (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER,
  query TEXT NOT NULL,
  search_type VARCHAR(20),
  filters TEXT,
  results_count INTEGER,
  clicked_result_id TEXT,
  response_time_ms REAL,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""

# Created after the data is in: faster, and the same end state.
INDEXES = """
CREATE UNIQUE INDEX idx_users_email ON users(email);
CREATE UNIQUE INDEX idx_users_uuid ON users(uuid);
CREATE INDEX idx_users_manager ON users(manager_id);
CREATE INDEX idx_user_roles_role ON user_roles(role_id);
CREATE INDEX idx_notifications_user ON notifications(user_id, is_read);
CREATE UNIQUE INDEX idx_passkeys_credential ON passkeys(credential_id);
CREATE INDEX idx_passkeys_user ON passkeys(user_id);
CREATE INDEX idx_assets_assigned ON assets(assigned_to);
CREATE INDEX idx_missions_drone ON missions(drone_id, status);
CREATE INDEX idx_telemetry_drone_time ON drone_telemetry(drone_id, recorded_at);
CREATE INDEX idx_audit_logs_user ON audit_logs(user_id, created_at);
CREATE INDEX idx_system_logs_created ON system_logs(created_at);
"""

FIRST_NAMES = (
    "José", "Zoë", "Søren", "Łukasz", "Renée", "Mikaela", "Aarav", "Chloé", "Björn", "Ngozi", "Ana", "Liam",
    "Olivia", "Noah", "Emma", "Mateo", "Sofía", "Hiroshi", "Αλέξης", "Иван", "Fatima", "Kwame", "Priya", "Élodie",
)
LAST_NAMES = (
    "García", "Müller", "Nakamura", "O'Brien", "Smith", "Johnson", "Nguyễn", "Kowalski", "Dvořák", "Silva",
    "Andersson", "Okafor", "Patel", "Rossi", "Brown", "Lee", "Tremblay", "Çelik",
)
CJK_NAMES = ("王芳", "山田太郎", "김민준", "李小龍", "佐藤花子")
EMOJI_NAMES = ("Ana 🚀", "Max ⚡ Power", "Lena 🌍 Fischer")
DOMAINS = ("nova.example", "novauniverse.io", "example.org")

_DAY_MS = 86_400_000
_T0_MS = int(TELEMETRY_START.timestamp() * 1000)
_SPAN_MS = TELEMETRY_DAYS * _DAY_MS
# Log tables go to MongoDB collections with TTLs (shortest: 7 days), so their rows are dated in the
# LOG_DAYS before the anchor day: a real server's TTL monitor would delete older ones on arrival.
LOG_DAYS = 6
LOG_TABLES = ("audit_logs", "system_logs", "user_activity", "performance_metrics", "error_logs", "api_usage",
              "search_analytics")
_LOG_SPAN_MS = LOG_DAYS * _DAY_MS
_EPOCH_2022_MS = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp() * 1000)
_MIXED = (0.5, 0.35, 0.1, 0.05)  # sqlite text, ISO 'T…Z', epoch millis, epoch seconds


def rows_for(scale: float = 1.0) -> dict[str, int]:
    """Rows per table at `scale`, in insertion (FK) order.

    Scaled tables get round(BASE_ROWS × scale) rows (at least MIN_ROWS);
    lookup tables are fixed. scale=1 is the demo (≈ 43 k rows); scale=50 is
    the benchmark shape (≈ 2.16 M rows: 1 M drone_telemetry, 500 k audit_logs,
    300 k system_logs, 200 k notifications, 50 k users).
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    n = {t: max(MIN_ROWS, round(b * scale)) for t, b in BASE_ROWS.items()}
    return {
        "roles": len(ROLES),
        "permissions": len(RESOURCES) * len(ACTIONS),
        "role_permissions": len(_role_permissions()),
        "users": n["users"],
        "user_roles": n["users"] + n["users"] // 10,
        "config": len(CONFIG),
        "kiosks": n["kiosks"],
        "notifications": n["notifications"],
        "passkeys": n["passkeys"],
        "assets": n["assets"],
        "directory_integrations": 3,
        "sso_configurations": 3,
        "drones": n["drones"],
        "missions": n["missions"],
        "mission_waypoints": n["missions"] * WAYPOINTS_PER_MISSION,
        "drone_telemetry": n["drone_telemetry"],
        **{t: n[t] for t in ("audit_logs", "system_logs", "user_activity", "performance_metrics",
                             "error_logs", "api_usage", "search_analytics")},
    }


def generate(path: Path, *, scale: float = 1.0, seed: int = 7, anchor: date | None = None) -> dict[str, int]:
    """Write the Nova sample database to `path` (replaced atomically if present); return rows per table.

    Log tables are dated in the LOG_DAYS before `anchor` (default: today, UTC) so
    that their MongoDB TTLs keep them; everything else is fixed in time. The same
    (scale, seed, anchor) always gives the same logical content. Columns are
    built as Arrow arrays and bulk-inserted through ADBC, several times faster
    than sqlite3's row-by-row binding. Columns mixing storage classes are
    written as text and SQLite's NUMERIC affinity (DATETIME, BOOLEAN) stores
    the numeric-looking values as integers, exactly as it did for the app.
    """
    counts = rows_for(scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed when complete: a failed run never leaves a half sample.
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with adbc_sqlite.connect(str(partial), autocommit=True) as conn, conn.cursor() as cur:
        # A one-shot bulk write of a file nobody reads yet: no journal, no fsync.
        for statement in ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
                          *_statements(SCHEMA), "BEGIN"):
            cur.execute(statement)
        anchor = anchor or datetime.now(UTC).date()
        log_t0_ms = int(datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC).timestamp() * 1000) - _LOG_SPAN_MS
        for table in counts:
            rng = np.random.default_rng([seed, zlib.crc32(table.encode())])
            builder = _BUILDERS[table]
            chunks = builder(rng, counts, log_t0_ms) if table in LOG_TABLES else builder(rng, counts)
            for chunk in chunks:
                cur.adbc_ingest(table, pa.table(chunk), mode="append")
        for table, column, row_id, value in BAD_VALUES:
            cur.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE id = ?', (value, row_id))
        for statement in (*_statements(INDEXES), "COMMIT"):
            cur.execute(statement)
    for stale in (path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm")):
        stale.unlink(missing_ok=True)
    partial.replace(path)
    return counts


Chunk = dict[str, Any]  # column → list | numpy array | Arrow array


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _role_permissions() -> list[tuple[int, int]]:
    perm_id = {(r, a): i for i, (r, a) in enumerate(((r, a) for r in RESOURCES for a in ACTIONS), start=1)}
    role_id = {name: i for i, (name, _, _) in enumerate(ROLES, start=1)}
    return [(role_id[role], perm_id[r, a]) for role, (res, acts) in _ROLE_GRANTS.items() for r in res for a in acts]


def _spread(start_ms: int, span_ms: int, n: int, rng: np.random.Generator, first: int = 0, total: int = 0) -> np.ndarray:
    """Rows first…first+n of `total` (default n) as increasing epoch-ms instants over [start, start+span):
    row order is time order, like an append-only log."""
    i = np.arange(first, first + n, dtype=np.int64)
    return start_ms + (i * span_ms) // (total or n) + rng.integers(0, 1000, n)


def _timestamps(rng: np.random.Generator, ms: np.ndarray, shares=_MIXED, missing: np.ndarray | None = None) -> pa.Array:
    """Epoch-ms instants rendered the ways a Node.js app stored them over the years:
    CURRENT_TIMESTAMP text, Date.toISOString(), Date.now() and Math.floor(Date.now() / 1000)
    (the epochs as digits, which DATETIME's NUMERIC affinity stores as integers). NULL where `missing`."""
    ms = np.asarray(ms, dtype=np.int64)
    kind = rng.choice(4, size=len(ms), p=shares)
    forms = (
        pc.cast(pa.array(ms // 1000, pa.timestamp("s")), pa.string()),
        _concat(pc.replace_substring(pc.cast(pa.array(ms, pa.timestamp("ms")), pa.string()), " ", "T"), "Z"),
        pc.cast(pa.array(ms), pa.string()),
        pc.cast(pa.array(ms // 1000), pa.string()),
    )
    if missing is not None:
        kind = pa.array(kind, mask=missing)
    return pc.choose(kind, *forms)


def _nulls(rng: np.random.Generator, values, share: float) -> pa.Array:
    values = values if isinstance(values, pa.Array) else pa.array(values)
    return pc.if_else(pa.array(rng.random(len(values)) < share), pa.nulls(len(values), values.type), values)


def _booleans(rng: np.random.Generator, flags: np.ndarray, strings: float = 0.0) -> pa.Array:
    """Flags as '1'/'0' (stored as integers by BOOLEAN's NUMERIC affinity); a `strings` share
    as 'true'/'false', as an older code path wrote them."""
    as_text = pa.array(rng.random(len(flags)) < strings)
    return pc.if_else(as_text, pc.if_else(pa.array(flags), "true", "false"), pc.if_else(pa.array(flags), "1", "0"))


def _pick(rng: np.random.Generator, choices, n: int, p=None) -> pa.Array:
    return pa.array(choices).take(pa.array(rng.choice(len(choices), size=n, p=p)))


def _ids(rng: np.random.Generator, upper: int, n: int) -> np.ndarray:
    return rng.integers(1, upper + 1, n)


def _concat(*parts) -> pa.Array:
    """Row-wise text concatenation of arrays (cast to text) and literal strings; null where any part is null."""
    arrays = [p if isinstance(p, str | pa.Array) else pa.array(p) for p in parts]
    return pc.binary_join_element_wise(*(a if isinstance(a, str) else pc.cast(a, pa.string()) for a in arrays), "")


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, CHUNK_ROWS):
        yield start, min(n, start + CHUNK_ROWS)


def _slug(text: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_.lower() if c.isalnum()) or "user"


def _homes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Home coordinates of the drones, shared by drones, waypoints and telemetry."""
    rng = np.random.default_rng(n)
    return rng.uniform(-55.0, 70.0, n), rng.uniform(-179.0, 179.0, n)


def _ips(rng: np.random.Generator, n: int) -> pa.Array:
    a, b, c = rng.integers(0, 256, (3, n))
    return _concat("10.", a, ".", b, ".", c)


def _roles(rng, counts) -> Iterator[Chunk]:
    ids = {name: i for i, (name, _, _) in enumerate(ROLES, start=1)}
    yield {
        "id": list(ids.values()),
        "name": [r[0] for r in ROLES],
        "description": [f"{r[0].capitalize()} role" if r[0] != "kiosk" else None for r in ROLES],
        "parent_role_id": pa.array([ids.get(r[1]) for r in ROLES], pa.int64()),
        "is_system": [r[2] for r in ROLES],
        "created_at": _timestamps(rng, np.full(len(ROLES), _EPOCH_2022_MS)),
    }


def _permissions(rng, counts) -> Iterator[Chunk]:
    pairs = [(r, a) for r in RESOURCES for a in ACTIONS]
    yield {
        "id": list(range(1, len(pairs) + 1)),
        "name": [f"{r}.{a}" for r, a in pairs],
        "resource": [r for r, _ in pairs],
        "action": [a for _, a in pairs],
        "description": _nulls(rng, [f"Can {a} {r}" for r, a in pairs], 0.2),
        "created_at": _timestamps(rng, np.full(len(pairs), _EPOCH_2022_MS)),
    }


def _role_permission_rows(rng, counts) -> Iterator[Chunk]:
    pairs = _role_permissions()
    yield {
        "role_id": [r for r, _ in pairs],
        "permission_id": [p for _, p in pairs],
        "granted_at": _timestamps(rng, _spread(_EPOCH_2022_MS, 30 * _DAY_MS, len(pairs), rng)),
    }


def _users(rng, counts) -> Iterator[Chunk]:
    n = counts["users"]
    ids = np.arange(1, n + 1)
    first, last = rng.choice(len(FIRST_NAMES), n), rng.choice(len(LAST_NAMES), n)
    style = rng.random(n)
    names = [
        CJK_NAMES[i % len(CJK_NAMES)] if s < 0.04 else EMOJI_NAMES[i % len(EMOJI_NAMES)] if s < 0.05
        else f"{FIRST_NAMES[f]} {LAST_NAMES[l]}"
        for i, (f, l, s) in enumerate(zip(first.tolist(), last.tolist(), style.tolist()))
    ]
    slugs = [_slug(x) for x in FIRST_NAMES], [_slug(x) for x in LAST_NAMES]
    emails = _concat(pa.array(slugs[0]).take(first), ".", pa.array(slugs[1]).take(last), ".", ids, "@",
                     _pick(rng, DOMAINS, n))
    created = _spread(_EPOCH_2022_MS, 730 * _DAY_MS, n, rng)
    push = pc.if_else(pa.array(rng.random(n) < 0.5), "true", "false")
    settings = _concat('{"theme":"', _pick(rng, ("dark", "light", "system"), n), '","language":"',
                       _pick(rng, ("en", "fr", "es", "ja", "de"), n), '","notifications":{"email":true,"push":', push, "}}")
    # The first ten users are the managers; everyone else reports to one of them, or to nobody.
    managers = rng.integers(1, 11, n)
    hex_ = rng.bytes(16 * n).hex()
    yield {
        "id": ids,
        "uuid": [f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}" for h in (hex_[k:k + 32] for k in range(0, 32 * n, 32))],
        "email": emails,
        "name": names,
        "password_hash": _nulls(rng, [f"$2b$12${hex_[k:k + 53]}" for k in range(0, 32 * n, 32)], 0.05),
        "is_active": (rng.random(n) < 0.85).astype(np.int64),
        "is_admin": _booleans(rng, rng.random(n) < 0.03, strings=0.05),
        "manager_id": pa.array(managers, mask=(ids <= 10) | (rng.random(n) < 0.15)),
        "settings": _nulls(rng, settings, 0.1),
        "last_login": _timestamps(rng, _T0_MS + rng.integers(0, _SPAN_MS, n), missing=rng.random(n) < 0.2),
        "created_at": _timestamps(rng, created),
        "updated_at": _timestamps(rng, created + rng.integers(0, 90 * _DAY_MS, n), missing=rng.random(n) < 0.3),
    }


def _user_roles(rng, counts) -> Iterator[Chunk]:
    n = counts["users"]
    pairs = [(1, 1)] + [(u, PRIMARY_ROLE_CYCLE[u % len(PRIMARY_ROLE_CYCLE)]) for u in range(2, n + 1)]
    pairs += [(u, EXTRA_ROLE) for u in range(10, n + 1, 10)]
    yield {
        "user_id": [u for u, _ in pairs],
        "role_id": [r for _, r in pairs],
        "assigned_by": _nulls(rng, [1] * len(pairs), 0.3),
        "assigned_at": _timestamps(rng, _spread(_EPOCH_2022_MS, 730 * _DAY_MS, len(pairs), rng)),
    }


def _config(rng, counts) -> Iterator[Chunk]:
    yield {
        "key": [c[0] for c in CONFIG],
        "value": [c[1] for c in CONFIG],
        "type": [c[2] for c in CONFIG],
        "is_secret": [c[3] for c in CONFIG],
        "updated_by": _nulls(rng, [1] * len(CONFIG), 0.25),
        "updated_at": _timestamps(rng, _spread(_EPOCH_2022_MS, 700 * _DAY_MS, len(CONFIG), rng)),
    }


def _kiosks(rng, counts) -> Iterator[Chunk]:
    n = counts["kiosks"]
    sites = ("Lobby", "Hall B — 2nd floor", "Cafétéria", "Hangar 3", "Front desk", "Büro Nord")
    yield {
        "id": [f"kiosk-{i:04d}" for i in range(1, n + 1)],
        "name": [f"Kiosk {i}" for i in range(1, n + 1)],
        "location": _nulls(rng, _pick(rng, sites, n), 0.1),
        "status": _pick(rng, ("online", "offline", "maintenance"), n, p=(0.7, 0.2, 0.1)),
        "is_active": _booleans(rng, rng.random(n) < 0.9),
        "version": _pick(rng, ("2.3.1", "2.4.0", "3.0.0-beta.2"), n),
        "config": _concat('{"theme":"dark","idle_seconds":', rng.integers(30, 300, n), ',"features":["checkin","tickets"]}'),
        "registered_by": _ids(rng, counts["users"], n),
        "last_seen": _timestamps(rng, _T0_MS + rng.integers(0, _SPAN_MS, n), missing=rng.random(n) < 0.2),
        "created_at": _timestamps(rng, _spread(_EPOCH_2022_MS, 700 * _DAY_MS, n, rng)),
    }


def _notifications(rng, counts) -> Iterator[Chunk]:
    total = counts["notifications"]
    kinds = ("ticket_update", "mission_alert", "system", "mention", "low_battery")
    titles = ("Ticket mis à jour", "Mission alert", "Maintenance prévue", "You were mentioned 💬", "Battery low")
    for start, stop in _chunks(total):
        n = stop - start
        kind = rng.choice(len(kinds), n)
        created = _spread(_T0_MS, _SPAN_MS, n, rng, first=start, total=total)
        read = rng.random(n) < 0.6
        refs = rng.integers(1, 100_000, n)
        yield {
            "id": np.arange(start + 1, stop + 1),
            "user_id": _ids(rng, counts["users"], n),
            "type": pa.array(kinds).take(kind),
            "title": pa.array(titles).take(kind),
            "message": _nulls(rng, _concat("Reference #", refs, " needs your attention"), 0.1),
            "priority": rng.integers(0, 4, n),
            "is_read": _booleans(rng, read, strings=0.02),
            "payload": _nulls(rng, _concat('{"ref":', refs, ',"channel":"web","kind":"', pa.array(kinds).take(kind), '"}'), 0.3),
            "created_at": _timestamps(rng, created),
            "read_at": _timestamps(rng, created + rng.integers(60_000, _DAY_MS, n), missing=~read),
        }


def _passkeys(rng, counts) -> Iterator[Chunk]:
    n = counts["passkeys"]
    # COSE EC2 key (kty 2, alg -7 ES256, crv P-256) with its two 32-byte coordinates.
    cose = (b"\xa5\x01\x02\x03\x26\x20\x01\x21\x58\x20", b"\x22\x58\x20")
    yield {
        "id": np.arange(1, n + 1),
        "user_id": _ids(rng, counts["users"], n),
        "credential_id": [rng.bytes(32) for _ in range(n)],
        "public_key": [cose[0] + rng.bytes(32) + cose[1] + rng.bytes(32) for _ in range(n)],
        "sign_count": rng.integers(0, 500, n),
        "transports": _pick(rng, ('["internal"]', '["usb","nfc"]', '["hybrid","internal"]'), n),
        "name": _nulls(rng, _pick(rng, ("MacBook Touch ID", "YubiKey 5C", "Pixel 8", "iPhone de Zoë"), n), 0.2),
        "created_at": _timestamps(rng, _spread(_EPOCH_2022_MS + 500 * _DAY_MS, 200 * _DAY_MS, n, rng)),
        "last_used_at": _timestamps(rng, _T0_MS + rng.integers(0, _SPAN_MS, n), missing=rng.random(n) < 0.3),
    }


def _assets(rng, counts) -> Iterator[Chunk]:
    n = counts["assets"]
    kinds = ("laptop", "tablet", "badge_reader", "drone_battery", "radio")
    kind = rng.choice(len(kinds), n)
    created = _spread(_EPOCH_2022_MS, 730 * _DAY_MS, n, rng)
    yield {
        "id": np.arange(1, n + 1),
        "asset_tag": [f"NOVA-{i:06d}" for i in range(1, n + 1)],
        "name": [f"{kinds[k].replace('_', ' ').title()} #{i}" for i, k in enumerate(kind.tolist(), start=1)],
        "type": pa.array(kinds).take(kind),
        "status": _pick(rng, ("active", "in_repair", "retired", "lost"), n, p=(0.8, 0.1, 0.08, 0.02)),
        "assigned_to": _nulls(rng, _ids(rng, counts["users"], n), 0.25),
        "kiosk_id": _nulls(rng, [f"kiosk-{k:04d}" for k in _ids(rng, counts["kiosks"], n).tolist()], 0.7),
        "purchase_date": _nulls(rng, (np.datetime64("2021-01-01") + rng.integers(0, 1000, n)).astype(str), 0.1),
        "purchase_cost": np.round(rng.uniform(40, 4000, n), 2),
        "metadata": _nulls(rng, _concat('{"vendor":"Dell","warranty_months":', rng.integers(12, 49, n), "}"), 0.3),
        "created_at": _timestamps(rng, created),
        "updated_at": _timestamps(rng, created + rng.integers(0, 60 * _DAY_MS, n), missing=rng.random(n) < 0.5),
    }


def _directory_integrations(rng, counts) -> Iterator[Chunk]:
    yield {
        "id": [1, 2, 3],
        "provider": ["ldap", "scim", "azure_ad"],
        "name": ["Corporate LDAP", "Okta SCIM", "Entra ID"],
        "enabled": ["1", "true", "0"],
        "config": ['{"url":"ldaps://ldap.nova.example","base_dn":"dc=nova,dc=example","tls":true}',
                   '{"endpoint":"/scim/v2","token_ref":"vault:scim"}', None],
        "last_sync_at": _timestamps(rng, _T0_MS + np.array([3_600_000, 7_200_000, 0]), missing=np.array([0, 0, 1], bool)),
        "created_by": pa.array([1, 1, None], pa.int64()),
        "created_at": _timestamps(rng, np.full(3, _EPOCH_2022_MS)),
    }


def _sso_configurations(rng, counts) -> Iterator[Chunk]:
    yield {
        "id": [1, 2, 3],
        "provider": ["saml", "oidc", "oidc"],
        "name": ["Okta SAML", "Google Workspace", "GitHub"],
        "enabled": ["1", "1", "false"],
        "entity_id": ["https://nova.example/saml/metadata", None, None],
        "metadata_url": ["https://nova.okta.example/app/metadata", None, None],
        "client_id": [None, "nova-web.apps.googleusercontent.example", "Iv1.0a1b2c3d4e5f"],
        "settings": ['{"sign_requests":true,"attribute_map":{"email":"mail"}}', '{"scopes":["openid","email"]}', "{}"],
        "created_at": _timestamps(rng, np.full(3, _EPOCH_2022_MS)),
        "updated_at": pa.nulls(3, pa.string()),
    }


def _drones(rng, counts) -> Iterator[Chunk]:
    n = counts["drones"]
    lat, lon = _homes(n)
    ids = np.arange(1, n + 1)
    yield {
        "id": ids,
        "serial_number": _concat("SE-", pc.utf8_lpad(pc.cast(pa.array(ids), pa.string()), width=5, padding="0"), "-",
                                 pa.array([rng.bytes(2).hex().upper() for _ in range(n)])),
        "name": _concat(_pick(rng, ("Falcon", "Hawk", "Osprey", "Kestrel", "Corbeau"), n), "-", ids),
        "model": _pick(rng, ("DJI Matrice 350", "Skydio X10", "Parrot Anafi USA"), n),
        "type": _pick(rng, ("surveillance", "delivery", "mapping", "inspection"), n),
        "status": _pick(rng, ("active", "idle", "maintenance", "retired"), n, p=(0.5, 0.3, 0.15, 0.05)),
        "is_armed": _booleans(rng, rng.random(n) < 0.2, strings=0.1),
        "home_latitude": lat,
        "home_longitude": lon,
        "max_altitude_m": _pick(rng, (120.0, 150.0, 400.0), n),
        "battery_capacity_mah": _pick(rng, (5000, 5880, 7000), n),
        "firmware_version": _pick(rng, ("v04.01.0016", "v04.02.0003", "v05.00.0100"), n),
        "owner_id": _ids(rng, counts["users"], n),
        "created_at": _timestamps(rng, _spread(_EPOCH_2022_MS, 700 * _DAY_MS, n, rng)),
        "last_seen_at": _timestamps(rng, _T0_MS + _SPAN_MS - rng.integers(0, _DAY_MS, n), missing=rng.random(n) < 0.1),
    }


def _missions(rng, counts) -> Iterator[Chunk]:
    n = counts["missions"]
    ids = np.arange(1, n + 1)
    statuses = ("planned", "active", "completed", "aborted")
    status = rng.choice(4, n, p=(0.25, 0.2, 0.45, 0.1))
    start = _T0_MS + rng.integers(0, _SPAN_MS, n)
    yield {
        "id": ids,
        "name": _concat("Opération ", _pick(rng, ("Aurora", "Boréal", "Cobalt", "Delta", "Éclipse"), n), " ", ids),
        # Mission k is flown by drone k (mod the fleet), so missions ≤ drones each have their own drone.
        "drone_id": (ids - 1) % counts["drones"] + 1,
        "commander_id": _nulls(rng, _ids(rng, counts["users"], n), 0.1),
        "status": pa.array(statuses).take(status),
        "threat_level": rng.integers(1, 6, n),
        "objective": _nulls(rng, _pick(rng, ("Perimeter patrol", "Pipeline inspection", "Search & rescue", "Cartographie"), n),
                            0.1),
        "parameters": _concat('{"max_speed_ms":', rng.integers(8, 20, n), ',"return_home_battery":', rng.integers(15, 30, n),
                              ',"geofence":true}'),
        "scheduled_start": _timestamps(rng, start - rng.integers(0, 3 * _DAY_MS, n)),
        "started_at": _timestamps(rng, start, missing=status == 0),
        "completed_at": _timestamps(rng, start + rng.integers(20 * 60_000, 6 * 3_600_000, n), missing=status < 2),
        "created_at": _timestamps(rng, start - 3 * _DAY_MS),
    }


def _waypoints(rng, counts) -> Iterator[Chunk]:
    m = counts["missions"]
    lat, lon = _homes(counts["drones"])
    mission = np.repeat(np.arange(1, m + 1), WAYPOINTS_PER_MISSION)
    drone = (mission - 1) % counts["drones"]
    n = len(mission)
    yield {
        "mission_id": mission,
        "seq": np.tile(np.arange(1, WAYPOINTS_PER_MISSION + 1), m),
        "latitude": lat[drone] + rng.normal(0, 0.01, n),
        "longitude": lon[drone] + rng.normal(0, 0.01, n),
        "altitude_m": np.round(rng.uniform(30, 120, n), 1),
        "action": _pick(rng, ("fly", "hover", "photo", "scan", "land"), n),
        "hold_seconds": rng.integers(0, 60, n),
    }


def _telemetry(rng, counts) -> Iterator[Chunk]:
    total, drones, missions = counts["drone_telemetry"], counts["drones"], counts["missions"]
    home_lat, home_lon = _homes(drones)
    for start, stop in _chunks(total):
        i = np.arange(start, stop, dtype=np.int64)
        n = len(i)
        drone, tick = i % drones, i // drones
        # Drone k flies mission k (when there is one) in two readings of three.
        on_mission = (drone < missions) & (tick % 3 != 0)
        yield {
            "id": i + 1,
            "drone_id": drone + 1,
            "mission_id": pa.array(drone + 1, mask=~on_mission),
            # Firmware before 2.0 sent Date.now(); newer firmware sends ISO strings.
            "recorded_at": _timestamps(rng, _spread(_T0_MS, _SPAN_MS, n, rng, first=start, total=total), shares=(0, 0.9, 0.1, 0)),
            "latitude": home_lat[drone] + 0.02 * np.sin(tick * 0.01) + rng.normal(0, 1e-4, n),
            "longitude": home_lon[drone] + 0.02 * np.cos(tick * 0.01) + rng.normal(0, 1e-4, n),
            "altitude_m": np.round(np.clip(rng.normal(110, 35, n), 0, 500), 2),
            "battery_percentage": np.clip(np.round(100 - tick % 90 - rng.uniform(0, 5, n), 1), 0, 100),
            "ground_speed_ms": np.round(rng.uniform(0, 18, n), 2),
            "heading_deg": np.round(rng.uniform(0, 360, n), 1),
            "signal_strength": rng.integers(-95, -30, n),
            "status": _pick(rng, ("ok", "low_battery", "returning", "hovering"), n, p=(0.85, 0.05, 0.05, 0.05)),
            "sensors": _nulls(rng, _concat('{"temp_c":', np.round(rng.normal(12, 8, n), 1), ',"wind_ms":',
                                           np.round(rng.uniform(0, 15, n), 1), "}"), 0.9),
        }


def _audit_logs(rng, counts, t0_ms: int) -> Iterator[Chunk]:
    total = counts["audit_logs"]
    actions = ("login", "logout", "user.update", "role.assign", "mission.create", "config.update", "export")
    entities = ("session", "session", "user", "role", "mission", "config", "report")
    agents = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Safari/605.1.15", "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0",
              "nova-kiosk/2.4.0", "curl/8.4.0")
    for start, stop in _chunks(total):
        n = stop - start
        action = rng.choice(len(actions), n, p=(0.35, 0.25, 0.1, 0.05, 0.1, 0.05, 0.1))
        ips = _ips(rng, n)
        success = pc.if_else(pa.array(rng.random(n) < 0.95), "true", "false")
        yield {
            "id": np.arange(start + 1, stop + 1),
            "user_id": _nulls(rng, _ids(rng, counts["users"], n), 0.05),
            "action": pa.array(actions).take(action),
            "entity_type": pa.array(entities).take(action),
            "entity_id": _nulls(rng, pc.cast(pa.array(rng.integers(1, 5000, n)), pa.string()), 0.2),
            "ip_address": ips,
            "user_agent": _nulls(rng, _pick(rng, agents, n), 0.1),
            "details": _concat('{"ip":"', ips, '","success":', success, ',"method":"password"}'),
            "created_at": _timestamps(rng, _spread(t0_ms, _LOG_SPAN_MS, n, rng, first=start, total=total)),
        }


def _system_logs(rng, counts, t0_ms: int) -> Iterator[Chunk]:
    total = counts["system_logs"]
    for start, stop in _chunks(total):
        n = stop - start
        duration = rng.integers(1, 2000, n)
        yield {
            "id": np.arange(start + 1, stop + 1),
            "level": _pick(rng, ("debug", "info", "warn", "error"), n, p=(0.2, 0.6, 0.15, 0.05)),
            "service": _pick(rng, ("nova-api", "nova-core", "nova-comms", "scheduler"), n),
            "message": _concat("request completed in ", duration, " ms"),
            "context": _nulls(rng, _concat('{"duration_ms":', duration, ',"route":"/api/v1/tickets"}'), 0.4),
            "hostname": _pick(rng, ("api-1", "api-2", "worker-1"), n),
            "pid": rng.integers(1000, 65000, n),
            "created_at": _timestamps(rng, _spread(t0_ms, _LOG_SPAN_MS, n, rng, first=start, total=total)),
        }


def _user_activity(rng, counts, t0_ms: int) -> Iterator[Chunk]:
    n = counts["user_activity"]
    yield {
        "id": np.arange(1, n + 1),
        "user_id": _ids(rng, counts["users"], n),
        "session_id": [rng.bytes(12).hex() for _ in range(n)],
        "activity": _pick(rng, ("page_view", "ticket_created", "search", "download"), n),
        "page": _pick(rng, ("/dashboard", "/tickets", "/missions/map", "/kb/articles/héliport", "/settings"), n),
        "metadata": _nulls(rng, _concat('{"duration_s":', rng.integers(1, 600, n), "}"), 0.3),
        "created_at": _timestamps(rng, _spread(t0_ms, _LOG_SPAN_MS, n, rng)),
    }


def _performance_metrics(rng, counts, t0_ms: int) -> Iterator[Chunk]:
    n = counts["performance_metrics"]
    yield {
        "id": np.arange(1, n + 1),
        "service": _pick(rng, ("api", "db", "search"), n),
        "metric": _pick(rng, ("response_time", "cpu_percent", "memory_mb"), n),
        "endpoint": _nulls(rng, _pick(rng, ("/tickets/search", "/missions", "/drone/telemetry"), n), 0.3),
        "value": rng.gamma(2.0, 60.0, n),
        "unit": _pick(rng, ("ms", "%", "MB"), n),
        "tags": _nulls(rng, _concat('{"resultsCount":', rng.integers(0, 100, n), "}"), 0.5),
        "recorded_at": _timestamps(rng, _spread(t0_ms, _LOG_SPAN_MS, n, rng)),
    }


def _error_logs(rng, counts, t0_ms: int) -> Iterator[Chunk]:
    n = counts["error_logs"]
    code = _pick(rng, ("ECONNRESET", "SQLITE_BUSY", "E_VALIDATION", "ETIMEDOUT"), n)
    yield {
        "id": np.arange(1, n + 1),
        "error_code": code,
        "message": _concat(code, ": operation failed"),
        "stack_trace": _nulls(rng, _concat("Error: ", code, "\n    at Database.run (db.js:", rng.integers(10, 400, n), ":13)"),
                              0.2),
        "user_id": _nulls(rng, _ids(rng, counts["users"], n), 0.4),
        "request_path": _pick(rng, ("/api/v1/tickets", "/api/v1/drones/telemetry", "/auth/login"), n),
        "is_resolved": _booleans(rng, rng.random(n) < 0.4, strings=0.1),
        "metadata": _nulls(rng, _concat('{"attempt":', rng.integers(1, 4, n), "}"), 0.3),
        "created_at": _timestamps(rng, _spread(t0_ms, _LOG_SPAN_MS, n, rng)),
    }


def _api_usage(rng, counts, t0_ms: int) -> Iterator[Chunk]:
    n = counts["api_usage"]
    yield {
        "id": np.arange(1, n + 1),
        "user_id": _nulls(rng, _ids(rng, counts["users"], n), 0.2),
        "api_key_id": _nulls(rng, [f"key_{k:04d}" for k in rng.integers(1, 50, n).tolist()], 0.6),
        "method": _pick(rng, ("GET", "POST", "PATCH", "DELETE"), n, p=(0.7, 0.2, 0.07, 0.03)),
        "endpoint": _pick(rng, ("/api/v1/tickets", "/api/v1/drones", "/api/v1/missions", "/api/v1/users/me"), n),
        "status_code": _pick(rng, (200, 201, 204, 400, 401, 404, 500), n, p=(0.7, 0.1, 0.05, 0.05, 0.04, 0.04, 0.02)),
        "response_time_ms": rng.gamma(2.0, 40.0, n),
        "request_size": rng.integers(0, 4096, n),
        "response_size": rng.integers(100, 200_000, n),
        "ip_address": _ips(rng, n),
        "created_at": _timestamps(rng, _spread(t0_ms, _LOG_SPAN_MS, n, rng)),
    }


def _search_analytics(rng, counts, t0_ms: int) -> Iterator[Chunk]:
    n = counts["search_analytics"]
    queries = ("installation issue", "réinitialiser mot de passe", "drone battery", "ドローン 設定", "vpn",
               "mission 🚁 report")
    yield {
        "id": np.arange(1, n + 1),
        "user_id": _nulls(rng, _ids(rng, counts["users"], n), 0.1),
        "query": _pick(rng, queries, n),
        "search_type": _pick(rng, ("tickets", "kb", "global"), n),
        "filters": _nulls(rng, _pick(rng, ('{"status":"open","priority":"high"}', '{"category":"documentation"}'), n), 0.4),
        "results_count": rng.integers(0, 60, n),
        "clicked_result_id": _nulls(rng, _concat("T", rng.integers(1000, 9999, n)), 0.5),
        "response_time_ms": rng.gamma(2.0, 25.0, n),
        "created_at": _timestamps(rng, _spread(t0_ms, _LOG_SPAN_MS, n, rng)),
    }


_BUILDERS: dict[str, Callable[[np.random.Generator, dict[str, int]], Iterator[Chunk]]] = {
    "roles": _roles,
    "permissions": _permissions,
    "role_permissions": _role_permission_rows,
    "users": _users,
    "user_roles": _user_roles,
    "config": _config,
    "kiosks": _kiosks,
    "notifications": _notifications,
    "passkeys": _passkeys,
    "assets": _assets,
    "directory_integrations": _directory_integrations,
    "sso_configurations": _sso_configurations,
    "drones": _drones,
    "missions": _missions,
    "mission_waypoints": _waypoints,
    "drone_telemetry": _telemetry,
    "audit_logs": _audit_logs,
    "system_logs": _system_logs,
    "user_activity": _user_activity,
    "performance_metrics": _performance_metrics,
    "error_logs": _error_logs,
    "api_usage": _api_usage,
    "search_analytics": _search_analytics,
}
