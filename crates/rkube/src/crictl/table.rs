//! crictl's table output: Go's `text/tabwriter` as crictl configures it (minwidth 20, tabwidth
//! 1, padding 3, pad ' ', no flags), and the helpers its columns use (truncated IDs, image
//! sizes as `units.HumanSizeWithPrecision(size, 3)`, image digests as go-digest parses them).
//! Users compare this output with the real crictl's and scripts cut its columns, so the
//! rules are reproduced exactly rather than approximated.

/// crictl's `newDefaultTableDisplay()`: `tabwriter.NewWriter(os.Stdout, 20, 1, 3, ' ', 0)`.
const MIN_WIDTH: usize = 20;
const PADDING: usize = 3;

/// crictl's `truncatedIDLen`.
pub const TRUNCATED_ID_LEN: usize = 13;

/// A table whose rows are written at once, as tabwriter buffers them until `Flush`.
#[derive(Default)]
pub struct Table {
    /// Lines not yet formatted; each holds its cells, the last one not tab-terminated.
    lines: Vec<Vec<String>>,
    out: String,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    /// crictl's `AddRow`: the cells joined by tabs, then a newline.
    pub fn add_row<S: AsRef<str>>(&mut self, row: &[S]) {
        let cells: Vec<String> = row.iter().map(|c| c.as_ref().to_owned()).collect();
        let single = cells.len() <= 1;
        self.lines.push(cells);
        // tabwriter flushes at a line of one cell: column blocks never span it.
        if single {
            self.flush_lines();
        }
    }

    /// Everything added so far, formatted (tabwriter's `Flush`).
    pub fn render(mut self) -> String {
        self.flush_lines();
        self.out
    }

    fn flush_lines(&mut self) {
        let mut widths = Vec::new();
        let n = self.lines.len();
        self.format(&mut widths, 0, n);
        self.lines.clear();
    }

    /// tabwriter's recursive `format`: a column block is a run of consecutive lines that have
    /// a (tab-terminated) cell in this column; its width is the widest cell plus the padding,
    /// at least the minimum width.
    fn format(&mut self, widths: &mut Vec<usize>, line0: usize, line1: usize) {
        let column = widths.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(widths, line0, this);
            line0 = this;
            let mut width = MIN_WIDTH;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(cell_width(&line[column]) + PADDING);
                this += 1;
            }
            widths.push(width);
            self.format(widths, line0, this);
            widths.pop();
            line0 = this;
        }
        self.write_lines(widths, line0, line1);
    }

    fn write_lines(&mut self, widths: &[usize], line0: usize, line1: usize) {
        for line in &self.lines[line0..line1] {
            for (j, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if let Some(w) = widths.get(j) {
                    let pad = w.saturating_sub(cell_width(cell));
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            self.out.push('\n');
        }
    }
}

/// How a listing (`ps`, `pods`, `images`) prints its items: their IDs alone (`-q`), a block
/// of text each (`-v`), or, without either, a table under the header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Ids,
    Verbose,
    Table,
}

/// A listing's output: the IDs or verbose blocks, then the table, printed at once as crictl's
/// table display flushes at the end.
pub struct Listing {
    mode: Mode,
    table: Table,
    text: String,
}

impl Listing {
    /// `quiet` wins over `verbose`; the table starts with `header`.
    pub fn new<S: AsRef<str>>(quiet: bool, verbose: bool, header: &[S]) -> Self {
        let mode = if quiet {
            Mode::Ids
        } else if verbose {
            Mode::Verbose
        } else {
            Mode::Table
        };
        let mut table = Table::new();
        if mode == Mode::Table {
            table.add_row(header);
        }
        Self {
            mode,
            table,
            text: String::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// An item's ID on a line of its own.
    pub fn id(&mut self, id: &str) {
        self.text.push_str(id);
        self.text.push('\n');
    }

    /// An item's row of the table.
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        self.table.add_row(cells);
    }

    /// Where an item's verbose block goes.
    pub fn text(&mut self) -> &mut String {
        &mut self.text
    }

    fn render(self) -> String {
        self.text + &self.table.render()
    }

    pub fn print(self) -> anyhow::Result<()> {
        super::out(&self.render())
    }
}

/// tabwriter counts a cell's width in UTF-8 runes.
fn cell_width(s: &str) -> usize {
    s.chars().count()
}

/// crictl's `getTruncatedID`: the prefix removed, then at most 13 characters.
pub fn truncate_id(id: &str, prefix: &str) -> String {
    let id = id.strip_prefix(prefix).unwrap_or(id);
    id.chars().take(TRUNCATED_ID_LEN).collect()
}

/// go-digest's `Parse`: `algorithm:hex` with a known algorithm and an encoding of its exact
/// length. Returns the algorithm. crictl shortens a container's IMAGE only when it is one.
pub fn parse_digest(s: &str) -> Option<&str> {
    let (alg, hex) = s.split_once(':')?;
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return None,
    };
    let valid = hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then_some(alg)
}

/// docker/go-units' `HumanSizeWithPrecision(size, 3)`: decimal units, `%.3g`.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    #[allow(clippy::cast_precision_loss)] // Go converts to float64 the same way
    let mut v = size as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(v, 3), UNITS[i])
}

/// Go's `%.{prec}g` for a non-negative finite number (`strconv.FormatFloat(v, 'g', prec,
/// 64)`): rounded to `prec` significant digits, trailing zeros dropped, `%e` form when the
/// exponent is below -4 or not below the precision.
pub fn go_g(v: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if v == 0.0 {
        return "0".to_owned();
    }
    // Rust rounds the exact binary value half-to-even, as Go's strconv does.
    let (digits, exp10) = sci_digits(&format!("{:.*e}", prec - 1, v));
    format_g(&digits, exp10, Some(prec))
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`: the shortest digits that read back as `v`.
pub fn go_g_shortest(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".to_owned()
        } else if v > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    let (digits, exp10) = sci_digits(&format!("{:e}", v.abs()));
    let s = format_g(&digits, exp10, None);
    if v < 0.0 { format!("-{s}") } else { s }
}

/// The significant digits (trailing zeros removed) and decimal exponent of Rust's `{:e}`.
fn sci_digits(s: &str) -> (Vec<u8>, i32) {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exp.parse().unwrap_or(0))
}

/// strconv's `%g` choice between `%e` and `%f` (ftoa.go), for digits `d.ddd × 10^exp10`.
fn format_g(digits: &[u8], exp10: i32, prec: Option<usize>) -> String {
    let nd = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let dp = exp10 + 1;
    let shortest = prec.is_none();
    let mut p = prec.map_or(nd, |p| i32::try_from(p).unwrap_or(i32::MAX));
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        p = p.min(nd);
        let mut out = String::new();
        out.push(char::from(digits[0]));
        if p > 1 {
            out.push('.');
            for i in 1..p {
                let d = digits.get(usize::try_from(i).unwrap_or(usize::MAX));
                out.push(d.map_or('0', |d| char::from(*d)));
            }
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        return out;
    }
    if p > dp {
        p = nd;
    }
    let decimals = (p - dp).max(0);
    let digit = |i: i32| -> char {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |d| char::from(*d))
    };
    let mut out = String::new();
    if dp > 0 {
        for i in 0..dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    if decimals > 0 {
        out.push('.');
        for i in 0..decimals {
            out.push(digit(dp + i));
        }
    }
    out
}

/// crictl's label filters: `key=value`, exactly one `=`.
pub fn parse_labels(
    labels: &[String],
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    labels
        .iter()
        .map(|s| {
            let parts: Vec<&str> = s.split('=').collect();
            match parts.as_slice() {
                [k, v] => Ok(((*k).to_owned(), (*v).to_owned())),
                _ => anyhow::bail!("incorrectly specified label: {s}"),
            }
        })
        .collect()
}

/// A `--name`/`--namespace` filter: Go regular expressions, unanchored; none matches all.
pub fn compile_regex(pattern: Option<&str>) -> anyhow::Result<Option<regex::Regex>> {
    match pattern.filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => regex::Regex::new(p)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("invalid regular expression {p:?}: {e}")),
    }
}

pub fn matches(re: Option<&regex::Regex>, s: &str) -> bool {
    re.is_none_or(|re| re.is_match(s))
}

/// crictl's `truncateCount`: `--latest` keeps one, `--last N` keeps N.
pub fn truncate_count(total: usize, latest: bool, last: i64) -> usize {
    let mut n = total;
    if latest {
        n = 1;
    }
    if last > 0 {
        n = usize::try_from(last).unwrap_or(usize::MAX);
    }
    n.min(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_tabwriter_makes_them() {
        let mut t = Table::new();
        t.add_row(&["CONTAINER", "CREATED", "STATE", "NAME"]);
        t.add_row(&["0123456789abc", "Less than a second ago", "Running", "main"]);
        t.add_row(&["x", "2 hours ago", "Exited", "a-very-long-container-name"]);
        let out = t.render();
        // minwidth 20; CREATED is 22 wide + 3 padding; the last column is not padded.
        let expected = [
            format!(
                "{:<20}{:<25}{:<20}{}",
                "CONTAINER", "CREATED", "STATE", "NAME"
            ),
            format!(
                "{:<20}{:<25}{:<20}{}",
                "0123456789abc", "Less than a second ago", "Running", "main"
            ),
            format!(
                "{:<20}{:<25}{:<20}{}",
                "x", "2 hours ago", "Exited", "a-very-long-container-name"
            ),
        ];
        assert_eq!(out, expected.join("\n") + "\n");
        // A header alone (no rows) is printed the same way.
        let mut t = Table::new();
        t.add_row(&["IMAGE", "TAG", "IMAGE ID", "SIZE"]);
        assert_eq!(
            t.render(),
            format!("{:<20}{:<20}{:<20}SIZE\n", "IMAGE", "TAG", "IMAGE ID")
        );
    }

    #[test]
    fn ragged_lines_form_column_blocks() {
        // Go: a line with fewer cells ends the blocks of the columns it lacks.
        let mut t = Table::new();
        t.add_row(&["a", "b", "c"]);
        t.add_row(&["aaaaaaaaaaaaaaaaaaaaaaaa", "b"]);
        t.add_row(&["a", "bbbbbbbbbbbbbbbbbbbbbbbbbb", "c"]);
        let out = t.render();
        let expected = [
            // The second line has no second column: the first line's block ends there.
            format!("{:<27}{:<20}{}", "a", "b", "c"),
            format!("{:<27}{}", "a".repeat(24), "b"),
            format!("{:<27}{:<29}{}", "a", "b".repeat(26), "c"),
        ];
        assert_eq!(out, expected.join("\n") + "\n");
    }

    #[test]
    fn listings_print_ids_blocks_or_a_table() {
        let header = ["ID", "NAME"];
        let mut l = Listing::new(true, true, &header);
        assert_eq!(l.mode(), Mode::Ids);
        l.id("a");
        l.id("b");
        assert_eq!(l.render(), "a\nb\n");
        let mut l = Listing::new(false, true, &header);
        assert_eq!(l.mode(), Mode::Verbose);
        l.text().push_str("ID: a\n\n");
        assert_eq!(l.render(), "ID: a\n\n");
        let mut l = Listing::new(false, false, &header);
        assert_eq!(l.mode(), Mode::Table);
        l.row(&["a", "web"]);
        assert_eq!(l.render(), format!("{:<20}NAME\n{:<20}web\n", "ID", "a"));
    }

    #[test]
    fn sizes_are_go_units_with_three_digits() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(1_048_576), "1.05MB");
        assert_eq!(human_size(4_194_304), "4.19MB");
        assert_eq!(human_size(12_000_000), "12MB");
        assert_eq!(human_size(123_456_789), "123MB");
        // Go's %.3g turns 999.7 into 1e+03.
        assert_eq!(human_size(999_700), "1e+03kB");
        assert_eq!(go_g(0.000_012_345, 3), "1.23e-05");
        assert_eq!(go_g_shortest(1.5), "1.5");
        assert_eq!(go_g_shortest(1_000_000.0), "1e+06");
        assert_eq!(go_g_shortest(123_456.5), "123456.5");
        assert_eq!(go_g_shortest(0.0001), "0.0001");
        assert_eq!(go_g_shortest(0.000_01), "1e-05");
    }

    #[test]
    fn ids_and_digests() {
        let id = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(parse_digest(id), Some("sha256"));
        assert_eq!(truncate_id(id, "sha256:"), "0123456789abc");
        assert_eq!(truncate_id("short", ""), "short");
        assert_eq!(parse_digest("sha256:0123"), None);
        assert_eq!(parse_digest("docker.io/library/busybox:latest"), None);
        assert_eq!(
            parse_digest(&id.to_uppercase().replace("SHA256", "sha256")),
            None
        );
    }

    #[test]
    fn labels_and_counts() {
        let l = parse_labels(&["a=b".to_owned()]).unwrap();
        assert_eq!(l.get("a").map(String::as_str), Some("b"));
        assert!(parse_labels(&["a=b=c".to_owned()]).is_err());
        assert!(parse_labels(&["a".to_owned()]).is_err());
        assert_eq!(truncate_count(5, false, 0), 5);
        assert_eq!(truncate_count(5, true, 0), 1);
        assert_eq!(truncate_count(5, true, 3), 3);
        assert_eq!(truncate_count(2, false, 3), 2);
        let re = compile_regex(Some("^we")).unwrap();
        assert!(matches(re.as_ref(), "web"));
        assert!(!matches(re.as_ref(), "aweb"));
        assert!(matches(None, "anything"));
    }
}
