//! Watches: history from the database, then live events from the writer.
//!
//! A watch subscribes to the writer's broadcast *before* it reads the committed revision, so
//! every commit is either in the history it reads or in the broadcast it receives (revisions
//! seen twice are skipped). A watcher that falls behind the broadcast buffer re-reads the gap
//! from the database instead of losing events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use rusqlite::params;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{SqliteStore, kv_from_row, sql_err};
use crate::{Error, Event, EventType, Result, Revision, WatchStream, prefix_end};

/// History rows read from the database per round trip.
const HISTORY_CHUNK: i64 = 512;

struct State {
    store: SqliteStore,
    prefix: String,
    end: Option<Vec<u8>>,
    rx: broadcast::Receiver<Arc<[Event]>>,
    /// The next revision this watcher wants.
    next: Revision,
    /// History up to here is read from the database before live events.
    replay_to: Revision,
    pending: VecDeque<Event>,
    done: bool,
}

pub(super) fn watch(store: SqliteStore, prefix: String, start: Revision) -> Result<WatchStream> {
    let shared = &store.inner.shared;
    let rx = shared.events.subscribe();
    let current = shared.current_rev.load(Ordering::SeqCst);
    let start = if start <= 0 { current + 1 } else { start };
    let compacted = shared.compact_rev.load(Ordering::SeqCst);
    if start < compacted {
        return Err(Error::Compacted {
            requested: start,
            compacted: Some(compacted),
        });
    }
    let state = State {
        end: prefix_end(prefix.as_bytes()),
        store,
        prefix,
        rx,
        next: start,
        replay_to: current,
        pending: VecDeque::new(),
        done: false,
    };
    Ok(futures::stream::unfold(state, step).boxed())
}

async fn step(mut st: State) -> Option<(Result<Event>, State)> {
    loop {
        if let Some(ev) = st.pending.pop_front() {
            return Some((Ok(ev), st));
        }
        if st.done {
            return None;
        }
        if st.next <= st.replay_to {
            if let Err(e) = st.read_history().await {
                st.done = true;
                return Some((Err(e), st));
            }
            continue;
        }
        match st.rx.recv().await {
            Ok(batch) => {
                for ev in batch.iter() {
                    if ev.revision() >= st.next && ev.kv.key.starts_with(&st.prefix) {
                        st.pending.push_back(ev.clone());
                    }
                }
                if let Some(last) = batch.last() {
                    st.next = st.next.max(last.revision() + 1);
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, prefix = %st.prefix, "watcher fell behind; reading history");
                st.replay_to = st.store.inner.current_rev();
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

impl State {
    /// Reads the next chunk of history in [next, replay_to] into `pending`.
    async fn read_history(&mut self) -> Result<()> {
        let (from, to) = (self.next, self.replay_to);
        let start = self.prefix.as_bytes().to_vec();
        let end = self.end.clone();
        let events = self
            .store
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT k.key, k.rev, k.create_rev, k.version, k.value,
                                p.key, p.rev, p.create_rev, p.version, p.value
                         FROM kv k LEFT JOIN kv p ON p.rev = k.prev_rev
                         WHERE k.rev >= ?1 AND k.rev <= ?2
                           AND k.key >= ?3 AND (?4 IS NULL OR k.key < ?4)
                         ORDER BY k.rev LIMIT ?5",
                    )
                    .map_err(|e| sql_err("watch history", e))?;
                let rows = stmt
                    .query_map(params![from, to, start, end, HISTORY_CHUNK], |r| {
                        let kv = kv_from_row(r, 0)?;
                        let prev_rev: Option<i64> = r.get(6)?;
                        let prev_kv = match prev_rev {
                            Some(_) => Some(kv_from_row(r, 5)?),
                            None => None,
                        };
                        Ok(Event {
                            event_type: if kv.version == 0 {
                                EventType::Delete
                            } else {
                                EventType::Put
                            },
                            kv,
                            prev_kv,
                        })
                    })
                    .map_err(|e| sql_err("watch history", e))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(|e| sql_err("watch history", e))
            })
            .await?;
        // History compacted before (or while) we read it cannot be trusted to be whole.
        let compacted = self.store.inner.shared.compact_rev.load(Ordering::SeqCst);
        if from < compacted {
            return Err(Error::Compacted {
                requested: from,
                compacted: Some(compacted),
            });
        }
        self.next = match events.last() {
            Some(last) if events.len() as i64 == HISTORY_CHUNK => last.revision() + 1,
            _ => to + 1,
        };
        self.pending.extend(events);
        Ok(())
    }
}
