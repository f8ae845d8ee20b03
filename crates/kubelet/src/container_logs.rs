//! Reading a container's CRI log file for `kubectl logs` (upstream's
//! `pkg/kubelet/kuberuntime/logs`): tail, since, timestamps, byte limit, and follow until the
//! container stops running.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;
use tracing::debug;

use crate::cri::RuntimeClient;
use crate::cri::api::ContainerState;
use crate::cri::logs::parse_line;

/// How often a follower looks for new lines at the end of the file.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often a follower asks the runtime whether the container still runs (upstream waits
/// for a file event at most 1 s before checking again).
const RUNNING_CHECK: Duration = Duration::from_secs(1);

/// `PodLogOptions` as the kubelet applies them (upstream's `LogOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Lines from the end to start at; `None` = all.
    pub tail: Option<u64>,
    /// Stop after this many bytes; `None` = no limit.
    pub limit_bytes: Option<u64>,
    /// Skip lines older than this.
    pub since: Option<Timestamp>,
    pub follow: bool,
    pub timestamps: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("failed to open log file {path:?}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read log file {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The offset where the last `n` lines of `f` start (upstream's `FindTailLineStartIndex`).
pub fn tail_start(f: &mut (impl Read + Seek), n: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 1024;
    let size = f.seek(SeekFrom::End(0))?;
    let mut left = size;
    let mut count = 0u64;
    let mut buf = Vec::new();
    let mut right = size;
    while right > 0 && count <= n {
        left = right.saturating_sub(BLOCK);
        buf.resize(usize::try_from(right - left).unwrap_or(0), 0);
        f.seek(SeekFrom::Start(left))?;
        f.read_exact(&mut buf)?;
        count += buf.iter().filter(|b| **b == b'\n').count() as u64;
        right = left;
    }
    // Skip the lines of the first block read beyond the `n` wanted.
    let mut skip = &buf[..];
    while count > n {
        match skip.iter().position(|b| *b == b'\n') {
            Some(i) => {
                skip = &skip[i + 1..];
                left += i as u64 + 1;
            }
            None => break,
        }
        count -= 1;
    }
    Ok(left)
}

/// Writes what a CRI log line says, as upstream's logWriter: the timestamp prefix (only at
/// the start of a line), the text, a newline after a full line; cut at the byte limit.
struct Writer {
    opts: LogOptions,
    remain: Option<u64>,
    at_line_start: bool,
}

enum Wrote {
    More,
    /// The byte limit is reached.
    Done,
}

impl Writer {
    fn render(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Wrote {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\n');
        let Some(line) = parse_line(text) else {
            debug!(line = %text, "skipping a log line not in CRI format");
            return Wrote::More;
        };
        if let Some(since) = self.opts.since {
            // A line whose time cannot be read is kept (it is not known to be older).
            if line.timestamp.parse::<Timestamp>().is_ok_and(|t| t < since) {
                return Wrote::More;
            }
        }
        let mut chunk = Vec::with_capacity(line.text.len() + 40);
        if self.opts.timestamps && self.at_line_start {
            chunk.extend_from_slice(line.timestamp.as_bytes());
            chunk.push(b' ');
        }
        chunk.extend_from_slice(line.text.as_bytes());
        if line.full {
            chunk.push(b'\n');
        }
        self.at_line_start = line.full;
        if let Some(remain) = self.remain.as_mut() {
            let take = chunk
                .len()
                .min(usize::try_from(*remain).unwrap_or(usize::MAX));
            out.extend_from_slice(&chunk[..take]);
            *remain -= take as u64;
            if *remain == 0 {
                return Wrote::Done;
            }
        } else {
            out.extend_from_slice(&chunk);
        }
        Wrote::More
    }
}

/// Streams the log at `path` of container `container_id` into `tx` per `opts`; returns when
/// done (or following, once the container no longer runs, or the receiver is gone).
pub async fn read_logs(
    path: &Path,
    container_id: &str,
    opts: &LogOptions,
    cri: &RuntimeClient,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), LogError> {
    let open_err = |source| LogError::Open {
        path: path.to_owned(),
        source,
    };
    let read_err = |source| LogError::Read {
        path: path.to_owned(),
        source,
    };
    let mut std_file = std::fs::File::open(path).map_err(open_err)?;
    let start = match opts.tail {
        Some(n) => tail_start(&mut std_file, n).map_err(read_err)?,
        None => 0,
    };
    let mut file = tokio::fs::File::from_std(std_file);
    file.seek(SeekFrom::Start(start)).await.map_err(read_err)?;
    let mut reader = BufReader::new(file);
    // Without follow, a tail stops after its lines even if more are written meanwhile.
    let mut lines_left = opts.tail.filter(|_| !opts.follow);
    let mut writer = Writer {
        opts: opts.clone(),
        remain: opts.limit_bytes,
        at_line_start: true,
    };
    let mut buf = Vec::new();
    // Following: set once the container stopped; the file is then read to its end.
    let mut last_pass = false;
    let mut checked = Instant::now()
        .checked_sub(RUNNING_CHECK)
        .unwrap_or_else(Instant::now);
    loop {
        if lines_left == Some(0) {
            return Ok(());
        }
        let n = reader.read_until(b'\n', &mut buf).await.map_err(read_err)?;
        let complete = buf.last() == Some(&b'\n');
        if n == 0 || !complete {
            if !opts.follow || last_pass {
                // The end: a last line without its newline is written as it is.
                if !buf.is_empty() {
                    let mut out = Vec::new();
                    writer.render(&buf, &mut out);
                    if !out.is_empty() {
                        let _ = tx.send(Bytes::from(out)).await;
                    }
                }
                return Ok(());
            }
            // An incomplete line stays in `buf`; the rest is appended by the next read.
            if checked.elapsed() >= RUNNING_CHECK {
                checked = Instant::now();
                if !is_running(cri, container_id).await {
                    last_pass = true;
                    continue;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => continue,
                _ = tx.closed() => return Ok(()),
            }
        }
        let mut out = Vec::new();
        let wrote = writer.render(&buf, &mut out);
        buf.clear();
        if let Some(l) = lines_left.as_mut() {
            *l -= 1;
        }
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return Ok(());
        }
        if matches!(wrote, Wrote::Done) {
            return Ok(());
        }
    }
}

/// Whether the container runs; a container the runtime no longer has does not.
async fn is_running(cri: &RuntimeClient, id: &str) -> bool {
    match cri.container_status(id, false).await {
        Ok(s) => s.state == ContainerState::ContainerRunning as i32,
        Err(e) => {
            debug!(container = %id, error = %e, "container status while following its log");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_all(opts: LogOptions, file: &str) -> String {
        let mut w = Writer {
            remain: opts.limit_bytes,
            opts,
            at_line_start: true,
        };
        let mut out = Vec::new();
        for l in file.split_inclusive('\n') {
            if let Wrote::Done = w.render(l.as_bytes(), &mut out) {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn tail_finds_line_starts() {
        let text = "a\nbb\nccc\n";
        let mut c = std::io::Cursor::new(text.as_bytes().to_vec());
        let at = |c: &mut std::io::Cursor<Vec<u8>>, n| tail_start(c, n).unwrap_or(99);
        assert_eq!(at(&mut c, 0), 9);
        assert_eq!(at(&mut c, 1), 5);
        assert_eq!(at(&mut c, 2), 2);
        assert_eq!(at(&mut c, 3), 0);
        assert_eq!(at(&mut c, 10), 0);
        // Across blocks.
        let long: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let mut c = std::io::Cursor::new(long.as_bytes().to_vec());
        let start = at(&mut c, 3) as usize;
        assert_eq!(&long[start..], "line 997\nline 998\nline 999\n");
    }

    #[test]
    fn renders_like_upstream() {
        let file = "2024-01-01T00:00:00.5Z stdout F one\n\
                    2024-01-01T00:00:01Z stderr P tw\n\
                    2024-01-01T00:00:02Z stderr F o\n\
                    2024-01-01T00:00:03Z stdout F three\n";
        assert_eq!(render_all(LogOptions::default(), file), "one\ntwo\nthree\n");
        let ts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render_all(ts, file),
            "2024-01-01T00:00:00.5Z one\n2024-01-01T00:00:01Z two\n2024-01-01T00:00:03Z three\n"
        );
        let since = LogOptions {
            since: "2024-01-01T00:00:02Z".parse().ok(),
            ..Default::default()
        };
        assert_eq!(render_all(since, file), "o\nthree\n");
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(render_all(limit, file), "one\ntw");
    }
}
