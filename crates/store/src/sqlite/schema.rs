//! The database file: opening, validating and creating it.
//!
//! Layout: `kv` is an append-only log, one row per revision (etcd's MVCC model): a key's
//! state at revision R is its newest row at or below R, and a row with `version = 0` is a
//! deletion (tombstone). `prev_rev` points at the row a write replaced, so a watch event's
//! previous value is one lookup, and compaction knows exactly which rows were superseded.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{Error, Result};

/// `PRAGMA application_id` of an rkube database ("rkub"): tells our file from any other
/// SQLite file before we touch it.
const APPLICATION_ID: i32 = 0x726b_7562;
const SCHEMA_VERSION: i32 = 1;

const CREATE: &str = "
CREATE TABLE kv (
    rev        INTEGER PRIMARY KEY,
    key        BLOB    NOT NULL,
    create_rev INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    value      BLOB    NOT NULL,
    prev_rev   INTEGER
);
CREATE UNIQUE INDEX kv_key_rev ON kv (key, rev);
CREATE TABLE lease (
    key        BLOB    PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX lease_expires_at ON lease (expires_at);
CREATE TABLE meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('compact_rev', 0), ('last_rev', 0);
";

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidDatabase {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens the writer's connection, creating the database if the file is new. An existing file
/// is validated first and left untouched when it is not a healthy rkube database.
pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let is_new = match std::fs::metadata(path) {
        Ok(m) => m.len() == 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(invalid(path, format!("cannot stat: {e}"))),
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | if is_new {
            OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::empty()
        };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| invalid(path, format!("cannot open: {e}")))?;
    if !is_new {
        validate(path, &conn)?;
    }
    configure(path, &conn)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| invalid(path, format!("cannot set synchronous=FULL: {e}")))?;
    if is_new {
        create(path, &conn)?;
    }
    Ok(conn)
}

/// Opens a read-only connection for readers (the writer has already validated the file).
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::backend(format!("opening reader on {}", path.display()), e))?;
    configure(path, &conn)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| Error::backend("setting query_only", e))?;
    Ok(conn)
}

fn configure(path: &Path, conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| invalid(path, format!("cannot set busy timeout: {e}")))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| invalid(path, format!("cannot enable WAL: {e}")))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(invalid(path, format!("journal mode is {mode}, WAL needed")));
    }
    Ok(())
}

/// Refuses anything that is not an intact rkube database of a schema we understand.
pub(super) fn validate(path: &Path, conn: &Connection) -> Result<()> {
    // The first read of the header fails for a file that is not SQLite at all.
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| invalid(path, format!("not a SQLite database ({e})")))?;
    if app_id != APPLICATION_ID {
        return Err(invalid(
            path,
            format!(
                "not an rkube database (SQLite application_id is {app_id:#x}, expected {APPLICATION_ID:#x})"
            ),
        ));
    }
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| invalid(path, format!("cannot read schema version: {e}")))?;
    if version > SCHEMA_VERSION {
        return Err(invalid(
            path,
            format!(
                "schema version {version} was written by a newer rkube (this one knows {SCHEMA_VERSION})"
            ),
        ));
    }
    if version < 1 {
        return Err(invalid(path, "database was never fully initialised"));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| invalid(path, format!("integrity check failed: {e}")))?;
    if check != "ok" {
        return Err(invalid(path, format!("database is corrupt: {check}")));
    }
    Ok(())
}

fn create(path: &Path, conn: &Connection) -> Result<()> {
    // application_id and user_version go in with the schema, in one transaction, so a file
    // carries our id only once it is complete.
    let sql = format!(
        "BEGIN; {CREATE} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    );
    conn.execute_batch(&sql)
        .map_err(|e| invalid(path, format!("cannot create schema: {e}")))
}

/// The meta counters kept beside the log.
pub(super) fn read_meta(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
    .map(|v| v.unwrap_or(0))
    .map_err(|e| Error::backend(format!("reading meta {name}"), e))
}

/// The newest revision: the log's last row, or the recorded one if compaction removed it.
pub(super) fn last_revision(conn: &Connection) -> Result<i64> {
    let max: Option<i64> = conn
        .query_row("SELECT max(rev) FROM kv", [], |r| r.get(0))
        .map_err(|e| Error::backend("reading the last revision", e))?;
    Ok(max.unwrap_or(0).max(read_meta(conn, "last_rev")?))
}
