//! The CRI container log format the runtime writes to `<log_directory>/<log_path>`:
//! one line per chunk, `<RFC 3339 nano timestamp> <stdout|stderr> <P|F> <text>`, where `P`
//! marks a partial line (split at `max_container_log_line_size`) continued by the next one.

/// One parsed line of a CRI log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub timestamp: &'a str,
    pub stream: Stream,
    /// `false` for a partial line (tag `P`): the text continues in the next line.
    pub full: bool,
    pub text: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Parses one line (without its trailing newline); `None` if it is not in CRI format.
pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let (timestamp, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ')?;
    let stream = match stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    // The text may be empty ("… stdout F "), and then there is nothing after the tag's space.
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let full = match tag {
        "F" => true,
        "P" => false,
        // Tags may carry more flags after a ':' in newer runtimes; only the first matters.
        t if t.starts_with("F:") => true,
        t if t.starts_with("P:") => false,
        _ => return None,
    };
    Some(LogLine {
        timestamp,
        stream,
        full,
        text,
    })
}

/// Joins partial lines (per stream, as they are split per stream) and returns the complete
/// messages of a whole log file in the order they were completed.
pub fn messages(content: &str) -> Vec<(Stream, String)> {
    let mut out = Vec::new();
    let mut pending_out: Option<String> = None;
    let mut pending_err: Option<String> = None;
    for line in content.lines().filter_map(parse_line) {
        let pending = match line.stream {
            Stream::Stdout => &mut pending_out,
            Stream::Stderr => &mut pending_err,
        };
        let mut text = pending.take().unwrap_or_default();
        text.push_str(line.text);
        if line.full {
            out.push((line.stream, text));
        } else {
            *pending = Some(text);
        }
    }
    out.extend(pending_out.map(|t| (Stream::Stdout, t)));
    out.extend(pending_err.map(|t| (Stream::Stderr, t)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_joins_partials() {
        let l = parse_line("2024-01-01T00:00:00.123456789Z stdout F hello world");
        assert_eq!(
            l,
            Some(LogLine {
                timestamp: "2024-01-01T00:00:00.123456789Z",
                stream: Stream::Stdout,
                full: true,
                text: "hello world",
            })
        );
        assert_eq!(parse_line("2024 stderr F ").map(|l| l.text), Some(""));
        assert_eq!(parse_line("garbage"), None);
        let file = "t stdout P abc\nt stderr F err\nt stdout F def\n";
        assert_eq!(
            messages(file),
            vec![
                (Stream::Stderr, "err".to_owned()),
                (Stream::Stdout, "abcdef".to_owned()),
            ]
        );
    }
}
