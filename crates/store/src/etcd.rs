//! The etcd v3 backend: a real etcd cluster, under a key prefix so several rkube clusters can
//! share one etcd. Conditional writes are etcd transactions comparing `create_revision` /
//! `mod_revision`, exactly as the Kubernetes API server does it; time-to-live uses leases.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use crate::{
    Error, Event, EventType, KeyValue, ListOptions, ListResult, Result, Revision, Store,
    WatchStream, check_start_key, prefix_end,
};

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Prepended to every key; lets several clusters share one etcd. May be empty.
    pub prefix: String,
    /// Longest wait for one request.
    pub request_timeout: Duration,
    /// How long [`EtcdStore::connect`] keeps retrying before it gives up.
    pub connect_deadline: Duration,
    /// TLS for `https://` endpoints; without it they are verified against the system's roots.
    pub tls: Option<EtcdTls>,
}

/// Client TLS to etcd, as PEM files (kube-apiserver's `--etcd-cafile`, `--etcd-certfile`,
/// `--etcd-keyfile`; k3s' `--datastore-cafile`, `-certfile`, `-keyfile`).
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's serving certificate.
    pub ca_file: Option<PathBuf>,
    /// This client's certificate and key, for an etcd with `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    fn options(&self) -> Result<TlsOptions> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| {
                Error::InvalidArgument(format!("reading etcd TLS file {}: {e}", p.display()))
            })
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(Error::InvalidArgument(
                    "an etcd client certificate needs both its certificate and its key file".into(),
                ));
            }
        }
        Ok(tls)
    }
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            prefix: String::new(),
            request_timeout: Duration::from_secs(10),
            connect_deadline: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// The etcd backend. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    endpoints: String,
    leases: std::sync::Arc<Mutex<Vec<Lease>>>,
}

#[derive(Clone, Copy)]
struct Lease {
    id: i64,
    expires: Instant,
}

/// Largest answer accepted from etcd (as the Kubernetes API server: effectively none).
const MAX_MESSAGE: usize = i32::MAX as usize;

/// Attempts for a read that failed because etcd could not be reached.
const READ_ATTEMPTS: u32 = 3;

impl EtcdStore {
    /// Connects, retrying with back-off until etcd answers or `connect_deadline` passes.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::InvalidArgument("no etcd endpoints given".into()));
        }
        let endpoints = config.endpoints.join(",");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls.options()?);
        }
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match Client::connect(&config.endpoints, Some(options.clone())).await {
                Ok(mut client) => match client.status().await {
                    Ok(_) => Ok(client),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(client) => {
                    tracing::info!(%endpoints, prefix = %config.prefix, "connected to etcd");
                    return Ok(EtcdStore {
                        client,
                        prefix: config.prefix,
                        endpoints,
                        leases: Default::default(),
                    });
                }
                Err(e) if started.elapsed() + delay < config.connect_deadline => {
                    tracing::warn!(%endpoints, attempt, error = %e, "etcd not reachable yet; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(Error::Unavailable(format!(
                        "etcd at {endpoints} did not answer after {attempt} attempts over {:.1?}: {e}",
                        started.elapsed()
                    )));
                }
            }
        }
    }

    /// A KV client that accepts large answers: a list of many objects is one message.
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE)
    }

    fn full(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn to_kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.prefix.as_bytes())
            .ok_or_else(|| {
                Error::InvalidArgument("etcd returned a key outside the prefix".into())
            })?;
        Ok(KeyValue {
            key: String::from_utf8(key.to_vec())
                .map_err(|e| Error::backend("etcd key is not UTF-8", e))?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
        })
    }

    /// Turns a client error into ours, naming the endpoints when etcd cannot be reached.
    fn err(&self, context: &str, requested: Revision, e: etcd_client::Error) -> Error {
        match &e {
            etcd_client::Error::GRpcStatus(s) => {
                let msg = s.message();
                if msg.contains("required revision has been compacted") {
                    return Error::Compacted {
                        requested,
                        compacted: None,
                    };
                }
                if msg.contains("required revision is a future revision") {
                    return Error::FutureRevision {
                        requested,
                        current: requested - 1,
                    };
                }
                // A connection that broke mid-stream shows as Unknown with the I/O error as
                // its source.
                let broken =
                    s.code() == tonic::Code::Unknown && std::error::Error::source(s).is_some();
                match s.code() {
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled => {
                        Error::Unavailable(format!("etcd at {}: {context}: {msg}", self.endpoints))
                    }
                    _ if broken => Error::Unavailable(format!(
                        "etcd at {}: {context}: connection lost: {msg}",
                        self.endpoints
                    )),
                    _ => Error::backend(format!("etcd {context}"), e),
                }
            }
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
                Error::Unavailable(format!("etcd at {}: {context}: {e}", self.endpoints))
            }
            _ => Error::backend(format!("etcd {context}"), e),
        }
    }

    /// Retries a read while etcd is unreachable: reads are safe to repeat.
    async fn retry_read<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match f().await {
                Err(Error::Unavailable(msg)) if attempt < READ_ATTEMPTS => {
                    tracing::warn!(attempt, "{msg}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A lease that ends between `ttl` and `ttl` + 5% (at most a minute) from now, reusing a
    /// recent one when it fits (as the Kubernetes API server does): one lease per write would
    /// double the writes for Events.
    async fn lease(&self, ttl: Duration) -> Result<i64> {
        let secs = ttl.as_secs().max(1) + u64::from(ttl.subsec_nanos() > 0);
        let reuse = (secs / 20).min(60);
        let now = Instant::now();
        let (min, max) = (
            now + Duration::from_secs(secs),
            now + Duration::from_secs(secs + reuse),
        );
        if reuse > 0
            && let Ok(mut leases) = self.leases.lock()
        {
            leases.retain(|l| l.expires > now);
            if let Some(l) = leases.iter().find(|l| l.expires >= min && l.expires <= max) {
                return Ok(l.id);
            }
        }
        let granted = self
            .client
            .lease_client()
            .grant((secs + reuse) as i64, None)
            .await
            .map_err(|e| self.err("granting a lease", 0, e))?;
        if reuse > 0
            && let Ok(mut leases) = self.leases.lock()
        {
            leases.push(Lease {
                id: granted.id(),
                expires: now + Duration::from_secs(granted.ttl().max(0) as u64),
            });
        }
        Ok(granted.id())
    }

    async fn put_op(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<TxnOp> {
        let opts = match ttl {
            Some(ttl) => PutOptions::new().with_lease(self.lease(ttl).await?),
            None => PutOptions::new(),
        };
        Ok(TxnOp::put(key.to_vec(), value.to_vec(), Some(opts)))
    }

    /// The value in a failed transaction's `else` branch (a GET of the key).
    fn else_value(&self, resp: &etcd_client::TxnResponse) -> Result<Option<KeyValue>> {
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                return get.kvs().first().map(|kv| self.to_kv(kv)).transpose();
            }
        }
        Ok(None)
    }
}

fn header_rev(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map(|h| h.revision()).unwrap_or(0)
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        let key = self.full("");
        self.retry_read(|| async {
            let resp = self
                .kv()
                .get(key.clone(), Some(GetOptions::new().with_count_only()))
                .await
                .map_err(|e| self.err("reading the revision", 0, e))?;
            Ok(header_rev(resp.header()))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let full = self.full(key);
        self.retry_read(|| async {
            let resp = self
                .kv()
                .get(full.clone(), None)
                .await
                .map_err(|e| self.err("get", 0, e))?;
            resp.kvs().first().map(|kv| self.to_kv(kv)).transpose()
        })
        .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        check_start_key(prefix, &opts)?;
        let full_prefix = self.full(prefix);
        let start = self.full(opts.start_key.as_deref().unwrap_or(prefix));
        // "\0" as range end means "every key from start" in etcd.
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let revision = opts.revision.filter(|r| *r > 0);
        let mut get = GetOptions::new().with_range(end);
        if let Some(limit) = opts.limit.filter(|l| *l > 0) {
            get = get.with_limit(limit as i64);
        }
        if let Some(r) = revision {
            get = get.with_revision(r);
        }
        self.retry_read(|| async {
            let resp = self
                .kv()
                .get(start.clone(), Some(get.clone()))
                .await
                .map_err(|e| self.err("list", revision.unwrap_or(0), e))?;
            Ok(ListResult {
                kvs: resp
                    .kvs()
                    .iter()
                    .map(|kv| self.to_kv(kv))
                    .collect::<Result<_>>()?,
                revision: revision.unwrap_or_else(|| header_rev(resp.header())),
                more: resp.more(),
            })
        })
        .await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let full_prefix = self.full(prefix);
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        self.retry_read(|| async {
            let resp = self
                .kv()
                .get(
                    full_prefix.clone(),
                    Some(GetOptions::new().with_range(end.clone()).with_count_only()),
                )
                .await
                .map_err(|e| self.err("count", 0, e))?;
            Ok(resp.count())
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Revision> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([self.put_op(&full, value, ttl).await?]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(|e| self.err("create", 0, e))?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists { key: key.into() });
        }
        Ok(header_rev(resp.header()))
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<Revision> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            )])
            .and_then([self.put_op(&full, value, ttl).await?])
            .or_else([TxnOp::get(full.clone(), None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(|e| self.err("update", 0, e))?;
        if resp.succeeded() {
            return Ok(header_rev(resp.header()));
        }
        match self.else_value(&resp)? {
            Some(current) => Err(Error::Conflict {
                key: key.into(),
                expected,
                current: Box::new(current),
            }),
            None => Err(Error::NotFound { key: key.into() }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let full = self.full(key);
        let delete = TxnOp::delete(
            full.clone(),
            Some(etcd_client::DeleteOptions::new().with_prev_key()),
        );
        // Unconditional deletes still go through a transaction: the answer must say what
        // was deleted, and a missing key is NotFound.
        let compare = Compare::mod_revision(
            full.clone(),
            if expected.is_some() {
                CompareOp::Equal
            } else {
                CompareOp::Greater
            },
            expected.unwrap_or(0),
        );
        let txn = Txn::new()
            .when([compare])
            .and_then([delete])
            .or_else([TxnOp::get(full.clone(), None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(|e| self.err("delete", 0, e))?;
        if resp.succeeded() {
            let rev = header_rev(resp.header());
            for op in resp.op_responses() {
                if let TxnOpResponse::Delete(d) = op
                    && let Some(prev) = d.prev_kvs().first()
                {
                    return Ok((rev, self.to_kv(prev)?));
                }
            }
            return Err(Error::NotFound { key: key.into() });
        }
        match (self.else_value(&resp)?, expected) {
            (Some(current), Some(expected)) => Err(Error::Conflict {
                key: key.into(),
                expected,
                current: Box::new(current),
            }),
            _ => Err(Error::NotFound { key: key.into() }),
        }
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        let full_prefix = self.full(prefix);
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let mut opts = WatchOptions::new().with_range(end).with_prev_key();
        if start_revision > 0 {
            opts = opts.with_start_revision(start_revision);
            // etcd reports a compacted start only after the watch is created, and later;
            // a read at that revision tells now.
            let probe = self
                .kv()
                .get(
                    full_prefix.clone(),
                    Some(
                        GetOptions::new()
                            .with_revision(start_revision)
                            .with_count_only(),
                    ),
                )
                .await;
            // A watch may start at a future revision; other faults show on the watch.
            if let Err(e @ Error::Compacted { .. }) =
                probe.map_err(|e| self.err("watch", start_revision, e))
            {
                return Err(e);
            }
        }
        let mut stream = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .watch(full_prefix, Some(opts))
            .await
            .map_err(|e| self.err("watch", start_revision, e))?;
        // The first answer says whether the watch exists; a compacted start cancels it.
        match stream.message().await {
            Ok(Some(resp)) if resp.compact_revision() > 0 => {
                return Err(Error::Compacted {
                    requested: start_revision,
                    compacted: Some(resp.compact_revision()),
                });
            }
            Ok(Some(resp)) if resp.canceled() => {
                return Err(Error::Unavailable(format!(
                    "etcd at {} cancelled the watch: {}",
                    self.endpoints,
                    resp.cancel_reason()
                )));
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Error::Unavailable(format!(
                    "etcd at {} closed the watch",
                    self.endpoints
                )));
            }
            Err(e) => return Err(self.err("watch", start_revision, e)),
        }
        let store = self.clone();
        let state = (stream, VecDeque::<Event>::new(), false);
        Ok(
            futures::stream::unfold(state, move |(mut stream, mut pending, done)| {
                let store = store.clone();
                async move {
                    loop {
                        if let Some(ev) = pending.pop_front() {
                            return Some((Ok(ev), (stream, pending, done)));
                        }
                        if done {
                            return None;
                        }
                        let resp = match stream.message().await {
                            Ok(Some(resp)) => resp,
                            Ok(None) => {
                                let e = Error::Unavailable(format!(
                                    "etcd at {} closed the watch",
                                    store.endpoints
                                ));
                                return Some((Err(e), (stream, pending, true)));
                            }
                            Err(e) => {
                                let e = store.err("watch", 0, e);
                                return Some((Err(e), (stream, pending, true)));
                            }
                        };
                        if resp.compact_revision() > 0 {
                            let e = Error::Compacted {
                                requested: 0,
                                compacted: Some(resp.compact_revision()),
                            };
                            return Some((Err(e), (stream, pending, true)));
                        }
                        if resp.canceled() {
                            let e = Error::Unavailable(format!(
                                "etcd at {} cancelled the watch: {}",
                                store.endpoints,
                                resp.cancel_reason()
                            ));
                            return Some((Err(e), (stream, pending, true)));
                        }
                        for ev in resp.events() {
                            match store.to_event(ev) {
                                Ok(ev) => pending.push_back(ev),
                                Err(e) => return Some((Err(e), (stream, pending, true))),
                            }
                        }
                    }
                }
            })
            .boxed(),
        )
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.kv().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(e) => match self.err("compact", revision, e) {
                // Compacting to an already compacted revision changes nothing.
                Error::Compacted { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

impl EtcdStore {
    fn to_event(&self, ev: &etcd_client::Event) -> Result<Event> {
        let kv = ev
            .kv()
            .ok_or_else(|| Error::InvalidArgument("etcd sent an event without a key".into()))?;
        Ok(Event {
            event_type: match ev.event_type() {
                etcd_client::EventType::Put => EventType::Put,
                etcd_client::EventType::Delete => EventType::Delete,
            },
            kv: self.to_kv(kv)?,
            prev_kv: ev.prev_kv().map(|kv| self.to_kv(kv)).transpose()?,
        })
    }
}
