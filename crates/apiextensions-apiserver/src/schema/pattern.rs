//! Schema `pattern`s, compiled with Go's `regexp` meaning: Go's Perl classes and word
//! boundaries are ASCII-only where the `regex` crate's are Unicode-aware, so they are rewritten
//! to their ASCII sets; `\Q...\E` and literal `{`s, which the crate refuses, are escaped.

use regex::Regex;

/// Compiles a Go (RE2) pattern.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&translate(pattern))
}

/// Whether `s` (just after a `{`) is a counted repetition: `n}`, `n,}` or `n,m}`.
fn is_repetition(s: &str) -> bool {
    let Some(end) = s.find('}') else { return false };
    let body = &s[..end];
    let (min, max) = body.split_once(',').unwrap_or((body, "0"));
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    digits(min) && (max.is_empty() || digits(max))
}

fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '{' && !is_repetition(&pattern[i + 1..]) {
            // Go reads a `{` that starts no repetition as a literal; the regex crate refuses it.
            out.push_str("\\{");
            continue;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, n)) = chars.next() else {
            out.push(c);
            break;
        };
        match n {
            'Q' => {
                // `\Q...\E`: a literal run.
                let rest = chars.as_str();
                let (lit, after) = rest.split_once("\\E").unwrap_or((rest, ""));
                out.push_str(&regex::escape(lit));
                let skip = rest.len() - after.len();
                for _ in rest[..skip].chars() {
                    chars.next();
                }
            }
            'd' => out.push_str("[0-9]"),
            'D' => out.push_str("[^0-9]"),
            'w' => out.push_str("[0-9A-Za-z_]"),
            'W' => out.push_str("[^0-9A-Za-z_]"),
            's' => out.push_str("[\\t\\n\\f\\r ]"),
            'S' => out.push_str("[^\\t\\n\\f\\r ]"),
            'b' => out.push_str("(?-u:\\b)"),
            'B' => out.push_str("(?-u:\\B)"),
            n => {
                out.push('\\');
                out.push(n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let re = compile(r"^\d+$").expect("compiles");
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣"), "Arabic-Indic digits are not \\d in Go");
        let re = compile(r"^[\w.-]+\s\S$").expect("compiles");
        assert!(re.is_match("a_b.c x"));
        assert!(!re.is_match("é x"));
        let re = compile(r"\\d").expect("compiles");
        assert!(re.is_match(r"\d"));
        assert!(compile(r"\bfoo\b").expect("compiles").is_match("a foo b"));
    }

    #[test]
    fn go_literal_forms_compile() {
        assert!(compile("^a{$").expect("compiles").is_match("a{"));
        assert!(compile("^a{x}$").expect("compiles").is_match("a{x}"));
        assert!(compile("^x{2,}$").expect("compiles").is_match("xxx"));
        assert!(!compile("^x{2,3}$").expect("compiles").is_match("x"));
        assert!(compile(r"^\Qa.b\E+$").expect("compiles").is_match("a.bb"));
        assert!(!compile(r"^\Qa.b\E$").expect("compiles").is_match("axb"));
    }
}
