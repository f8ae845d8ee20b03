//! `crictl logs`: a container's CRI log file (the one its status names) read as
//! k8s.io/cri-client's `ReadLogs` reads it: each line's text to stdout or stderr as its
//! stream says, partial lines joined, `--tail` counting file lines from the end, `--follow`
//! until the container stops.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kubelet::RuntimeClient;
use kubelet::cri::api;
use time::OffsetDateTime;

use super::timefmt;

/// How often `--follow` looks for more output (cri-client's forced check is every second).
const FOLLOW_POLL: Duration = Duration::from_millis(200);
const FOLLOW_FORCE_CHECK: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct Args {
    #[arg(value_name = "CONTAINER-ID")]
    container_id: String,
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Print the logs for the previous instance of the container in a pod if it exists
    #[arg(short, long)]
    previous: bool,
    /// Reopen the container logs for the provided container
    #[arg(short, long)]
    reopen: bool,
    /// Number of lines to show from the end of the logs. Defaults to all
    #[arg(long, allow_negative_numbers = true)]
    tail: Option<i64>,
    /// Maximum bytes of logs to return. Defaults to no limit
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    limit_bytes: i64,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show specified stream (stdout or stderr). Defaults to both.
    #[arg(short, long)]
    stream: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stream {
    Stdout,
    Stderr,
}

/// One parsed line (cri-client's `logMessage`).
#[derive(Debug)]
struct Message {
    time: OffsetDateTime,
    stream: Stream,
    /// The text; a full line keeps its newline, a partial one has none.
    log: Vec<u8>,
}

/// cri-client's `parseCRILog`: `<RFC 3339 time> <stdout|stderr> <P|F>[:more tags] <text>`.
fn parse_line(line: &[u8]) -> anyhow::Result<Message> {
    let split = |b: &[u8]| b.iter().position(|&c| c == b' ');
    let i = split(line).context("timestamp is not found")?;
    let ts = std::str::from_utf8(&line[..i]).unwrap_or_default();
    let time =
        timefmt::parse_rfc3339(ts).with_context(|| format!("unexpected timestamp {ts:?}"))?;
    let rest = &line[i + 1..];
    let i = split(rest).context("stream type is not found")?;
    let stream = match &rest[..i] {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => anyhow::bail!(
            "unexpected stream type {:?}",
            String::from_utf8_lossy(other)
        ),
    };
    let mut rest = &rest[i + 1..];
    let i = split(rest).context("log tag is not found")?;
    // Newer runtimes may add tags after a ':'; only the first one matters.
    let partial = rest[..i].split(|&c| c == b':').next() == Some(b"P");
    if partial && rest.last() == Some(&b'\n') {
        rest = &rest[..rest.len() - 1];
    }
    Ok(Message {
        time,
        stream,
        log: rest[i + 1..].to_vec(),
    })
}

/// cri-client's `findTailLineStartIndex`: where the last `n` lines start (an unterminated
/// last line is not one); the start of the file for a negative `n`.
fn tail_start<R: Read + Seek>(f: &mut R, n: i64) -> std::io::Result<u64> {
    const BLOCK: i64 = 1024;
    if n < 0 {
        return Ok(0);
    }
    let size = i64::try_from(f.seek(SeekFrom::End(0))?).unwrap_or(i64::MAX);
    let (mut left, mut count) = (0i64, 0i64);
    let mut buf = Vec::new();
    let mut right = size;
    while right > 0 && count <= n {
        left = (right - BLOCK).max(0);
        buf = vec![0; usize::try_from(right - left).unwrap_or(0)];
        f.seek(SeekFrom::Start(u64::try_from(left).unwrap_or(0)))?;
        f.read_exact(&mut buf)?;
        count += i64::try_from(buf.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0);
        right -= BLOCK;
    }
    let mut start = 0usize;
    while count > n {
        let Some(i) = buf[start..].iter().position(|&c| c == b'\n') else {
            break;
        };
        start += i + 1;
        count -= 1;
    }
    Ok(u64::try_from(left).unwrap_or(0) + start as u64)
}

/// cri-client's `logWriter`: the streams asked for, `--since`, `--limit-bytes`, timestamps.
struct Writer {
    stdout: Option<std::io::Stdout>,
    stderr: Option<std::io::Stderr>,
    timestamps: bool,
    since: Option<i128>,
    remain: i64,
}

enum Written {
    More,
    /// `--limit-bytes` reached.
    Full,
}

impl Writer {
    fn write(&mut self, msg: &Message, add_prefix: bool) -> anyhow::Result<Written> {
        if self
            .since
            .is_some_and(|s| msg.time.unix_timestamp_nanos() < s)
        {
            return Ok(Written::More);
        }
        let mut line = Vec::with_capacity(msg.log.len() + 32);
        if self.timestamps && add_prefix {
            line.extend_from_slice(timefmt::rfc3339_fixed(&msg.time).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&msg.log);
        if i64::try_from(line.len()).unwrap_or(i64::MAX) > self.remain {
            line.truncate(usize::try_from(self.remain).unwrap_or(0));
        }
        let result = match msg.stream {
            Stream::Stdout => self.stdout.as_mut().map(|w| w.write_all(&line)),
            Stream::Stderr => self.stderr.as_mut().map(|w| w.write_all(&line)),
        };
        // A stream not asked for is neither written nor counted.
        let Some(result) = result else {
            return Ok(Written::More);
        };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(Written::Full),
            r => r.context("writing the log")?,
        }
        self.remain -= i64::try_from(line.len()).unwrap_or(0);
        Ok(if self.remain <= 0 {
            Written::Full
        } else {
            Written::More
        })
    }

    fn flush(&mut self) {
        if let Some(w) = &mut self.stdout {
            let _ = w.flush();
        }
        if let Some(w) = &mut self.stderr {
            let _ = w.flush();
        }
    }
}

pub async fn run(cri: &RuntimeClient, a: Args) -> anyhow::Result<()> {
    if a.container_id.is_empty() {
        anyhow::bail!("ID cannot be empty");
    }
    if a.reopen {
        cri.reopen_container_log(&a.container_id)
            .await
            .context("reopen container logs")?;
        super::log("info", "Container logs reopened");
    }
    let since = a.since.as_deref().map(timefmt::parse_since).transpose()?;
    let (want_out, want_err) = match a.stream.as_deref() {
        None | Some("") => (true, true),
        Some("stdout") => (true, false),
        Some("stderr") => (false, true),
        Some(s) => anyhow::bail!("invalid stream {s:?}, must be \"stdout\" or \"stderr\""),
    };
    if a.tail.is_some() && a.stream.is_some() {
        anyhow::bail!("--tail and --stream are mutually exclusive");
    }
    let status = cri.container_status(&a.container_id, false).await?;
    let mut path = status.log_path.clone();
    if path.is_empty() {
        anyhow::bail!("the container has not set log path");
    }
    if a.previous {
        path = previous_log(&status, &path)?;
    }
    let writer = Writer {
        stdout: want_out.then(std::io::stdout),
        stderr: want_err.then(std::io::stderr),
        timestamps: a.timestamps,
        since: since.map(i128::from),
        remain: if a.limit_bytes >= 0 {
            a.limit_bytes
        } else {
            i64::MAX
        },
    };
    let opts = ReadOptions {
        tail: a.tail.unwrap_or(-1),
        follow: a.follow,
    };
    read_logs(cri, Path::new(&path), &status.id, opts, writer).await
}

/// The previous instance's log: `<attempt - 1>.log` next to this one.
fn previous_log(status: &api::ContainerStatus, path: &str) -> anyhow::Result<String> {
    let meta = status.metadata.clone().unwrap_or_default();
    if meta.attempt == 0 {
        anyhow::bail!("previous terminated container {} not found", meta.name);
    }
    let dir = path.rfind('/').map_or("", |i| &path[..=i]);
    let ext = path.rfind('.').map_or("", |i| &path[i..]);
    Ok(format!("{dir}{}{ext}", meta.attempt - 1))
}

struct ReadOptions {
    tail: i64,
    follow: bool,
}

/// cri-client's `ReadLogs`.
async fn read_logs(
    cri: &RuntimeClient,
    path: &Path,
    id: &str,
    opts: ReadOptions,
    mut writer: Writer,
) -> anyhow::Result<()> {
    let path = std::fs::canonicalize(path).with_context(|| {
        format!(
            "failed to try resolving symlinks in path {:?}",
            path.display()
        )
    })?;
    let open = |p: &PathBuf| {
        File::open(p).with_context(|| format!("failed to open log file {:?}", p.display()))
    };
    let mut file = open(&path)?;
    let start = tail_start(&mut file, opts.tail).with_context(|| {
        format!(
            "failed to tail {} lines of log file {:?}",
            opts.tail,
            path.display()
        )
    })?;
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(file);
    let limited = opts.tail >= 0 && !opts.follow;
    let mut left = opts.tail;
    let mut is_new_line = true;
    let mut found = true;
    let mut stop = false;
    let mut retried_once = false;
    let mut line = Vec::new();
    loop {
        if stop || (limited && left == 0) {
            writer.flush();
            return Ok(());
        }
        line.clear();
        reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("failed to read log file {:?}", path.display()))?;
        if line.last() != Some(&b'\n') {
            // End of the file, maybe in the middle of a line.
            if opts.follow {
                if !found {
                    writer.flush();
                    return Ok(());
                }
                // Read the incomplete line again once it is complete.
                reader.seek_relative(-i64::try_from(line.len()).unwrap_or(0))?;
                // As cri-client does after starting its watcher: look once more at once.
                if !retried_once {
                    retried_once = true;
                    continue;
                }
                writer.flush();
                let (more, recreated) = wait_logs(cri, id, &path, reader.get_ref()).await?;
                found = more;
                if recreated && let Ok(f) = open(&path) {
                    reader = BufReader::new(f);
                }
                continue;
            }
            stop = true;
            if line.is_empty() {
                continue;
            }
        }
        let Ok(msg) = parse_line(&line) else {
            // cri-client logs such a line and goes on.
            continue;
        };
        if let Written::Full = writer.write(&msg, is_new_line)? {
            writer.flush();
            return Ok(());
        }
        if limited {
            left -= 1;
        }
        is_new_line = msg.log.last().is_none_or(|&c| c == b'\n');
    }
}

/// cri-client's `waitLogs`, polling instead of inotify: whether to go on reading (the
/// container still runs) and whether the file was replaced (rotated).
async fn wait_logs(
    cri: &RuntimeClient,
    id: &str,
    path: &Path,
    file: &File,
) -> anyhow::Result<(bool, bool)> {
    match cri.container_status(id, false).await {
        Ok(s) if s.state == api::ContainerState::ContainerRunning as i32 => {}
        Ok(_) => return Ok((false, false)),
        // A runtime that is restarting keeps its containers running.
        Err(e) if e.is_unavailable() => {}
        Err(e) => return Err(e.into()),
    }
    let opened = file.metadata().ok();
    let start = std::time::Instant::now();
    while start.elapsed() < FOLLOW_FORCE_CHECK {
        tokio::time::sleep(FOLLOW_POLL).await;
        let now = std::fs::metadata(path).ok();
        match (&opened, &now) {
            (Some(o), Some(n)) if o.ino() != n.ino() || o.dev() != n.dev() => {
                return Ok((true, true));
            }
            (Some(_), Some(_)) => {
                let pos_len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if opened.as_ref().is_some_and(|o| pos_len != o.len()) {
                    return Ok((true, false));
                }
            }
            _ => {}
        }
    }
    Ok((true, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_as_cri_client_parses_them() {
        let m = parse_line(b"2024-01-02T03:04:05.5Z stdout F hello\n").unwrap();
        assert_eq!(m.stream, Stream::Stdout);
        assert_eq!(m.log, b"hello\n");
        let m = parse_line(b"2024-01-02T03:04:05.5Z stderr P part\n").unwrap();
        assert_eq!(m.stream, Stream::Stderr);
        assert_eq!(m.log, b"part");
        let m = parse_line(b"2024-01-02T03:04:05Z stdout F:x \n").unwrap();
        assert_eq!(m.log, b"\n");
        assert!(parse_line(b"garbage\n").is_err());
        assert!(parse_line(b"2024-01-02T03:04:05Z stdin F x\n").is_err());
    }

    #[test]
    fn tail_counts_lines_from_the_end() {
        let text = b"a\nbb\nccc\n";
        let start = |n| tail_start(&mut std::io::Cursor::new(&text[..]), n).unwrap();
        assert_eq!(start(-1), 0);
        assert_eq!(start(0), 9);
        assert_eq!(start(1), 5);
        assert_eq!(start(2), 2);
        assert_eq!(start(10), 0);
        // An unterminated last line is not counted.
        let text = b"a\nbb";
        assert_eq!(
            tail_start(&mut std::io::Cursor::new(&text[..]), 1).unwrap(),
            0
        );
        // Across blocks.
        let big: Vec<u8> = (0..500)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let s = tail_start(&mut std::io::Cursor::new(&big[..]), 3).unwrap();
        assert_eq!(
            &big[usize::try_from(s).unwrap()..],
            b"line 497\nline 498\nline 499\n"
        );
    }

    #[test]
    fn the_previous_log_is_the_attempt_before() {
        let status = api::ContainerStatus {
            metadata: Some(api::ContainerMetadata {
                name: "c".into(),
                attempt: 2,
            }),
            ..Default::default()
        };
        assert_eq!(
            previous_log(&status, "/logs/c/2.log").unwrap(),
            "/logs/c/1.log"
        );
        let first = api::ContainerStatus::default();
        assert!(previous_log(&first, "/logs/c/0.log").is_err());
    }
}
