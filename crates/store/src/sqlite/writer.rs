//! The writer thread: group commit, leases (TTL expiry) and compaction.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::{Shared, latest, schema, sql_err};
use crate::{Error, Event, EventType, KeyValue, Result, Revision};

pub(super) enum Op {
    Create {
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

#[derive(Debug)]
pub(super) enum Output {
    Written(Revision),
    Deleted(Revision, KeyValue),
    Compacted,
}

pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Output>>,
}

/// Why one operation in a batch did not apply.
enum Fail {
    /// The operation's own answer (already exists, conflict, ...): the database is untouched
    /// and the rest of the batch goes on.
    Answer(Error),
    /// The database failed: the whole batch is rolled back.
    Storage(Error),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Storage(sql_err("write", e))
    }
}

/// What a batch accumulates before its commit.
#[derive(Default)]
struct Batch {
    rev: Revision,
    events: Vec<Event>,
    compact_to: Option<Revision>,
    earliest_lease: Option<i64>,
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The last durably committed revision.
    committed: Revision,
    max_batch: usize,
    /// When the next key's time-to-live ends (unix ms), if any key has one.
    next_expiry: Option<i64>,
}

pub(super) fn spawn(
    conn: Connection,
    shared: Arc<Shared>,
    max_batch: usize,
) -> Result<(Sender<Request>, std::thread::JoinHandle<()>)> {
    let next_expiry = earliest_lease(&conn).map_err(|e| sql_err("reading leases", e))?;
    let committed = shared.current_rev.load(Ordering::SeqCst);
    let writer = Writer {
        conn,
        shared,
        committed,
        max_batch,
        next_expiry,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| Error::backend("starting the store writer thread", e))?;
    Ok((tx, handle))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn earliest_lease(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT min(expires_at) FROM lease", [], |r| r.get(0))
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        loop {
            // Sleep until a write arrives or the next time-to-live ends.
            let first = match self.next_expiry {
                None => match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                },
                Some(at) => {
                    let wait = (at - now_ms()).max(0) as u64;
                    match rx.recv_timeout(Duration::from_millis(wait)) {
                        Ok(r) => Some(r),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            // Everything already waiting joins this commit.
            let mut batch: Vec<Request> = first.into_iter().collect();
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let expire = self.next_expiry.is_some_and(|at| at <= now_ms());
            self.commit(batch, expire);
        }
        tracing::debug!("store writer stopped");
    }

    fn commit(&mut self, batch: Vec<Request>, expire: bool) {
        let ops: Vec<&Op> = batch.iter().map(|r| &r.op).collect();
        match self.apply(&ops, expire) {
            Ok(outputs) => {
                for (req, out) in batch.into_iter().zip(outputs) {
                    let _ = req.reply.send(out);
                }
            }
            Err(e) if batch.len() == 1 && !expire => {
                if let Some(req) = batch.into_iter().next() {
                    let _ = req.reply.send(Err(e));
                }
            }
            Err(e) => {
                // One write's failure must not fail its neighbours: apply each alone.
                tracing::warn!(error = %e, writes = batch.len(), "batch commit failed; retrying writes one by one");
                for req in batch {
                    let out = match self.apply(&[&req.op], false) {
                        Ok(mut outs) => outs.pop().unwrap_or(Err(Error::Closed)),
                        Err(e) => Err(e),
                    };
                    let _ = req.reply.send(out);
                }
                if expire && let Err(e) = self.apply(&[], true) {
                    tracing::warn!(error = %e, "expiring keys failed");
                    // Try again later rather than spinning on a failing disk.
                    self.next_expiry = Some(now_ms() + 1000);
                }
            }
        }
    }

    /// Applies `ops` (and expiry, if due) in one transaction and commits it. Returns each
    /// operation's answer; an `Err` means nothing was committed.
    fn apply(&mut self, ops: &[&Op], expire: bool) -> Result<Vec<Result<Output>>> {
        let now = now_ms();
        let mut batch = Batch {
            rev: self.committed,
            ..Batch::default()
        };
        let result = self.apply_in_txn(ops, expire, now, &mut batch);
        let outputs = match result {
            Ok(outputs) => outputs,
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                // A failed commit may still have reached the disk: never reuse a revision.
                if let Ok(rev) = schema::last_revision(&self.conn) {
                    self.committed = self.committed.max(rev);
                    self.shared
                        .current_rev
                        .fetch_max(self.committed, Ordering::SeqCst);
                }
                return Err(e);
            }
        };
        // Durable: publish.
        self.committed = batch.rev;
        self.shared.current_rev.store(batch.rev, Ordering::SeqCst);
        if let Some(c) = batch.compact_to {
            self.shared.compact_rev.store(c, Ordering::SeqCst);
        }
        if !batch.events.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = self.shared.events.send(batch.events.into());
        }
        if expire {
            self.next_expiry = earliest_lease(&self.conn).unwrap_or(Some(now + 1000));
        }
        if let Some(t) = batch.earliest_lease {
            self.next_expiry = Some(self.next_expiry.map_or(t, |n| n.min(t)));
        }
        Ok(outputs)
    }

    fn apply_in_txn(
        &self,
        ops: &[&Op],
        expire: bool,
        now: i64,
        batch: &mut Batch,
    ) -> Result<Vec<Result<Output>>> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| sql_err("beginning a write", e))?;
        let mut outputs = Vec::with_capacity(ops.len());
        for op in ops {
            match self.apply_one(op, now, batch) {
                Ok(out) => outputs.push(Ok(out)),
                Err(Fail::Answer(e)) => outputs.push(Err(e)),
                Err(Fail::Storage(e)) => return Err(e),
            }
        }
        if expire {
            self.expire(now, batch).map_err(|f| match f {
                Fail::Answer(e) | Fail::Storage(e) => e,
            })?;
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| sql_err("committing", e))?;
        Ok(outputs)
    }

    fn apply_one(&self, op: &Op, now: i64, batch: &mut Batch) -> Result<Output, Fail> {
        match op {
            Op::Create { key, value, ttl } => {
                if latest(&self.conn, key.as_bytes())?.is_some_and(|kv| kv.version > 0) {
                    return Err(Fail::Answer(Error::AlreadyExists { key: key.clone() }));
                }
                batch.rev += 1;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: batch.rev,
                    mod_revision: batch.rev,
                    version: 1,
                };
                self.insert(&kv, None)?;
                self.set_lease(key, *ttl, now, batch)?;
                batch.events.push(Event {
                    event_type: EventType::Put,
                    kv,
                    prev_kv: None,
                });
                Ok(Output::Written(batch.rev))
            }
            Op::Update {
                key,
                value,
                expected,
                ttl,
            } => {
                let cur = self.live(key)?;
                if cur.mod_revision != *expected {
                    return Err(Fail::Answer(Error::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Box::new(cur),
                    }));
                }
                batch.rev += 1;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: cur.create_revision,
                    mod_revision: batch.rev,
                    version: cur.version + 1,
                };
                self.insert(&kv, Some(cur.mod_revision))?;
                self.set_lease(key, *ttl, now, batch)?;
                batch.events.push(Event {
                    event_type: EventType::Put,
                    kv,
                    prev_kv: Some(cur),
                });
                Ok(Output::Written(batch.rev))
            }
            Op::Delete { key, expected } => {
                let cur = self.live(key)?;
                if let Some(expected) = *expected
                    && cur.mod_revision != expected
                {
                    return Err(Fail::Answer(Error::Conflict {
                        key: key.clone(),
                        expected,
                        current: Box::new(cur),
                    }));
                }
                let rev = self.tombstone(&cur, batch)?;
                Ok(Output::Deleted(rev, cur))
            }
            Op::Compact { revision } => {
                self.compact(*revision, batch)?;
                Ok(Output::Compacted)
            }
        }
    }

    /// A key's live value, or `NotFound`.
    fn live(&self, key: &str) -> Result<KeyValue, Fail> {
        latest(&self.conn, key.as_bytes())?
            .filter(|kv| kv.version > 0)
            .ok_or_else(|| Fail::Answer(Error::NotFound { key: key.into() }))
    }

    fn insert(&self, kv: &KeyValue, prev_rev: Option<Revision>) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO kv (rev, key, create_rev, version, value, prev_rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                kv.mod_revision,
                kv.key.as_bytes(),
                kv.create_revision,
                kv.version,
                &kv.value[..],
                prev_rev
            ])?;
        Ok(())
    }

    /// Writes a deletion of `cur` and its event.
    fn tombstone(&self, cur: &KeyValue, batch: &mut Batch) -> Result<Revision, Fail> {
        batch.rev += 1;
        let kv = KeyValue {
            key: cur.key.clone(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: batch.rev,
            version: 0,
        };
        self.insert(&kv, Some(cur.mod_revision))?;
        self.conn
            .prepare_cached("DELETE FROM lease WHERE key = ?1")?
            .execute([cur.key.as_bytes()])?;
        batch.events.push(Event {
            event_type: EventType::Delete,
            kv,
            prev_kv: Some(cur.clone()),
        });
        Ok(batch.rev)
    }

    fn set_lease(
        &self,
        key: &str,
        ttl: Option<Duration>,
        now: i64,
        batch: &mut Batch,
    ) -> rusqlite::Result<()> {
        match ttl {
            Some(ttl) => {
                let at = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO lease (key, expires_at) VALUES (?1, ?2)",
                    )?
                    .execute(params![key.as_bytes(), at])?;
                batch.earliest_lease = Some(batch.earliest_lease.map_or(at, |e| e.min(at)));
            }
            None => {
                self.conn
                    .prepare_cached("DELETE FROM lease WHERE key = ?1")?
                    .execute([key.as_bytes()])?;
            }
        }
        Ok(())
    }

    /// Deletes every key whose time-to-live has ended, as etcd does when a lease expires.
    fn expire(&self, now: i64, batch: &mut Batch) -> Result<(), Fail> {
        let keys: Vec<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT key FROM lease WHERE expires_at <= ?1")?
            .query_map([now], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for key in keys {
            match latest(&self.conn, &key)?.filter(|kv| kv.version > 0) {
                Some(cur) => {
                    self.tombstone(&cur, batch)?;
                }
                None => {
                    self.conn
                        .prepare_cached("DELETE FROM lease WHERE key = ?1")?
                        .execute([&key])?;
                }
            }
        }
        Ok(())
    }

    /// Drops the history before `revision`: every row a later write (at or below
    /// `revision`) superseded, and deletions older than `revision`. Each key keeps its newest
    /// row at or below `revision`, so reads at `revision` and later are unchanged.
    fn compact(&self, revision: Revision, batch: &mut Batch) -> Result<(), Fail> {
        let from = batch
            .compact_to
            .unwrap_or_else(|| self.shared.compact_rev.load(Ordering::SeqCst));
        if revision <= from {
            return Ok(());
        }
        if revision > batch.rev {
            return Err(Fail::Answer(Error::FutureRevision {
                requested: revision,
                current: batch.rev,
            }));
        }
        let superseded = self.conn.execute(
            "DELETE FROM kv WHERE rev IN
               (SELECT prev_rev FROM kv WHERE rev > ?1 AND rev <= ?2 AND prev_rev IS NOT NULL)",
            params![from, revision],
        )?;
        let tombstones = self.conn.execute(
            "DELETE FROM kv WHERE rev >= ?1 AND rev < ?2 AND version = 0",
            params![from, revision],
        )?;
        self.conn.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'compact_rev'",
            [revision],
        )?;
        self.conn.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'last_rev'",
            [batch.rev],
        )?;
        tracing::debug!(revision, superseded, tombstones, "compacted");
        batch.compact_to = Some(revision);
        Ok(())
    }
}
