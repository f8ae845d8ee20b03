//! Watches: from the watch cache when it can serve the requested revision, else from the
//! store; events filtered by selectors and translated (a change that moves an object out of
//! a selector is a DELETED), with `sendInitialEvents` and bookmarks.

use super::*;

impl Registry {
    /// Watches a resource (all namespaces or one). `resource_version` "" or "0" starts
    /// with the current objects as ADDED events; N resumes after N. Served by the watch
    /// cache; a resume from before its window is served from the store's history (which
    /// answers 410 Expired once that is compacted too).
    pub async fn watch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        label: LabelSelector,
        field: FieldSelector,
        resource_version: Option<&str>,
        send_initial_events: Option<bool>,
    ) -> ApiResult<Watch> {
        let filter = WatchFilter {
            label,
            field,
            keep: None,
        };
        self.watch_filtered(info, ns, filter, resource_version, send_initial_events)
            .await
    }

    /// A watch of every object of a kind from `resource_version` for one of the API
    /// server's own followers, without the events whose stored bytes fail `keep` (they are
    /// never decoded): for a follower that ignores most objects, as the Node authorizer
    /// ignores pods not yet bound to a node.
    pub async fn watch_prefiltered(
        &self,
        info: &ResourceInfo,
        resource_version: Option<&str>,
        keep: fn(&[u8]) -> bool,
    ) -> ApiResult<Watch> {
        let filter = WatchFilter {
            keep: Some(keep),
            ..Default::default()
        };
        self.watch_filtered(info, None, filter, resource_version, None)
            .await
    }

    pub(super) async fn watch_filtered(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        filter: WatchFilter,
        resource_version: Option<&str>,
        send_initial_events: Option<bool>,
    ) -> ApiResult<Watch> {
        let prefix = Self::prefix(info, ns);
        let rv = resource_version
            .filter(|r| !r.is_empty())
            .map(parse_rv)
            .transpose()?;
        let initial = send_initial_events.unwrap_or(matches!(rv, None | Some(0)));
        let fresh = match (initial, rv) {
            (true, Some(0)) => true,
            (true, _) => self.cache.wait_fresh(None).await,
            (false, rv) => self.cache.wait_fresh(Some(rv.unwrap_or(0))).await,
        };
        let start = match initial {
            true => Start::Now,
            false => Start::After(rv.unwrap_or(0)),
        };
        let sub = fresh
            .then(|| self.cache.subscribe(&prefix, start))
            .flatten();
        let progress = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let items: BoxStream<'static, (i64, Option<ApiResult<WatchEvent>>)> = match sub {
            Some(sub) => {
                self.reads.watch_cache.fetch_add(1, Ordering::Relaxed);
                self.cached_watch(info, prefix, filter, sub, send_initial_events)
            }
            None => {
                self.reads.watch_store.fetch_add(1, Ordering::Relaxed);
                self.store_watch(info, ns, filter, rv, send_initial_events)
                    .await?
            }
        };
        let p = progress.clone();
        let events = items
            .filter_map(move |(rev, ev)| {
                if rev > 0 {
                    p.store(rev, Ordering::Relaxed);
                }
                futures::future::ready(ev)
            })
            .boxed();
        Ok(Watch { events, progress })
    }

    /// A watch from the cache: its snapshot or replay, then the live feed. Each item carries
    /// the revision the watcher has reached after it (0: not yet a consistent point).
    pub(super) fn cached_watch(
        &self,
        info: &ResourceInfo,
        prefix: String,
        filter: WatchFilter,
        sub: watch_cache::Subscription,
        send_initial_events: Option<bool>,
    ) -> BoxStream<'static, (i64, Option<ApiResult<WatchEvent>>)> {
        let tf = self.transformer(info);
        let mut head = Vec::new();
        for kv in &sub.initial {
            match decode(tf.as_deref(), info, kv) {
                Ok(obj) if filter.matches(&obj) => head.push((
                    0,
                    Some(Ok(WatchEvent {
                        kind: "ADDED",
                        object: obj,
                    })),
                )),
                Ok(_) => {}
                Err(e) => head.push((0, Some(Err(e)))),
            }
        }
        if send_initial_events == Some(true) {
            head.push((0, Some(Ok(initial_events_end(info, sub.rev)))));
        }
        for ev in &sub.replay {
            head.push((ev.revision(), translate(tf.as_deref(), info, &filter, ev)));
        }
        head.push((sub.rev, None));
        struct Live {
            tf: Option<Arc<Transformer>>,
            info: ResourceInfo,
            prefix: String,
            filter: WatchFilter,
            rx: tokio::sync::broadcast::Receiver<watch_cache::Msg>,
            cache: Arc<WatchCache>,
            last: i64,
            backlog: std::collections::VecDeque<Arc<store::Event>>,
        }
        let live = Live {
            tf,
            info: info.clone(),
            prefix,
            filter,
            rx: sub.live,
            cache: self.cache.clone(),
            last: sub.rev,
            backlog: Default::default(),
        };
        let tail = futures::stream::unfold(live, |mut w| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let ev = match w.backlog.pop_front() {
                    Some(ev) => ev,
                    None => match w.rx.recv().await {
                        Ok(watch_cache::Msg::Event(ev)) => ev,
                        Ok(watch_cache::Msg::Reset) | Err(RecvError::Closed) => return None,
                        Err(RecvError::Lagged(_)) => {
                            // Too slow for the live feed: catch up from the window, or end
                            // so the client resumes from what it has.
                            w.backlog = w.cache.catch_up(&w.prefix, w.last)?.into();
                            continue;
                        }
                    },
                };
                let rev = ev.revision();
                if rev <= w.last {
                    continue;
                }
                w.last = rev;
                let out = if ev.kv.key.starts_with(&w.prefix) {
                    translate(w.tf.as_deref(), &w.info, &w.filter, &ev)
                } else {
                    None
                };
                return Some(((rev, out), w));
            }
        });
        futures::stream::iter(head).chain(tail).boxed()
    }

    /// A watch read from the store's history, for a resume from before the cache's window.
    pub(super) async fn store_watch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        filter: WatchFilter,
        rv: Option<i64>,
        send_initial_events: Option<bool>,
    ) -> ApiResult<BoxStream<'static, (i64, Option<ApiResult<WatchEvent>>)>> {
        let prefix = Self::prefix(info, ns);
        let tf = self.transformer(info);
        let mut head = Vec::new();
        let start = if send_initial_events.unwrap_or(matches!(rv, None | Some(0))) {
            let (kvs, rev, _) = self
                .list_matching(
                    info,
                    ns,
                    &ListQuery {
                        label: filter.label.clone(),
                        field: filter.field.clone(),
                        ..Default::default()
                    },
                )
                .await?;
            for kv in &kvs {
                head.push((
                    0,
                    Some(decode(tf.as_deref(), info, kv).map(|object| WatchEvent {
                        kind: "ADDED",
                        object,
                    })),
                ));
            }
            if send_initial_events == Some(true) {
                head.push((0, Some(Ok(initial_events_end(info, rev)))));
            }
            head.push((rev, None));
            rev + 1
        } else {
            rv.unwrap_or(0) + 1
        };
        let stream = self
            .store
            .watch(&prefix, start)
            .await
            .map_err(|e| ApiError::from_store(info, "", e))?;
        let info = info.clone();
        let events = stream.map(move |ev| match ev {
            Err(e) => (0, Some(Err(ApiError::from_store(&info, "", e)))),
            Ok(ev) => (ev.revision(), translate(tf.as_deref(), &info, &filter, &ev)),
        });
        Ok(futures::stream::iter(head).chain(events).boxed())
    }
}

/// The bookmark that ends a watch's initial events (`sendInitialEvents=true`).
pub(super) fn initial_events_end(info: &ResourceInfo, rev: i64) -> WatchEvent {
    WatchEvent {
        kind: "BOOKMARK",
        object: json!({
            "kind": info.kind,
            "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": rev.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
        }),
    }
}

/// What a watcher is sent: objects matching its selectors, and (for the API server's own
/// followers) only events whose stored bytes pass `keep`.
#[derive(Default)]
pub(super) struct WatchFilter {
    label: LabelSelector,
    field: FieldSelector,
    keep: Option<fn(&[u8]) -> bool>,
}

impl WatchFilter {
    fn selects_all(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }

    fn matches(&self, o: &Value) -> bool {
        self.label.matches(o) && self.field.matches(o)
    }
}

/// A store event as a client's watch event, through the selectors: an object that stops
/// matching is DELETED for this watcher, one that starts matching is ADDED. The previous
/// object is decoded only when it decides something (a delete, or selectors to compare).
pub(super) fn translate(
    tf: Option<&Transformer>,
    info: &ResourceInfo,
    filter: &WatchFilter,
    ev: &store::Event,
) -> Option<ApiResult<WatchEvent>> {
    let current = match ev.event_type {
        EventType::Delete => ev.prev_kv.as_ref()?,
        EventType::Put => &ev.kv,
    };
    if let Some(keep) = filter.keep {
        match unseal(tf, current) {
            Ok(opened) if !keep(&opened.data) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(e)),
        }
    }
    match ev.event_type {
        EventType::Delete => {
            let mut obj = match decode(tf, info, current) {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            };
            meta::set_resource_version(&mut obj, ev.kv.mod_revision);
            filter.matches(&obj).then_some(Ok(WatchEvent {
                kind: "DELETED",
                object: obj,
            }))
        }
        EventType::Put => {
            let obj = match decode(tf, info, current) {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            };
            let prev = match &ev.prev_kv {
                Some(kv) if !filter.selects_all() => match decode(tf, info, kv) {
                    Ok(p) => Some(p),
                    Err(e) => return Some(Err(e)),
                },
                _ => None,
            };
            let was = match &prev {
                Some(p) => filter.matches(p),
                None => ev.prev_kv.is_some() && filter.selects_all(),
            };
            match (was, filter.matches(&obj)) {
                (false, true) => Some(Ok(WatchEvent {
                    kind: "ADDED",
                    object: obj,
                })),
                (true, true) => Some(Ok(WatchEvent {
                    kind: "MODIFIED",
                    object: obj,
                })),
                (true, false) => {
                    let mut gone = prev?;
                    meta::set_resource_version(&mut gone, ev.kv.mod_revision);
                    Some(Ok(WatchEvent {
                        kind: "DELETED",
                        object: gone,
                    }))
                }
                (false, false) => None,
            }
        }
    }
}
