//! A rule's `fieldPath` (`.spec.replicas`, `['key.with.dots']`): checked against the schema
//! and normalized to the field path violations report (upstream's `ValidFieldPath`).

use crate::schema::Node;

/// Appends a field name to a field path (`a` + `b` = `a.b`).
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Appends a map key or list index to a field path (`a` + `k` = `a[k]`).
pub(crate) fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// Splits on `.`, `[` and `]`, keeping single-quoted strings whole.
fn tokens(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let b = rest.as_bytes();
        let len = if b[0] == b'\'' {
            let mut end = rest.len();
            for i in 1..b.len() {
                if b[i] == b'\'' && b[i - 1] != b'\\' {
                    end = i + 1;
                    break;
                }
            }
            end
        } else if matches!(b[0], b'.' | b'[' | b']') {
            1
        } else {
            rest.find(['.', '[', ']']).unwrap_or(rest.len())
        };
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out
}

fn unescape_single_quote(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('v') => '\u{b}',
            Some('\'') => '\'',
            Some('\\') => '\\',
            Some(other) => {
                return Err(format!(
                    "invalid string literal: invalid escape char \\{other}"
                ));
            }
            None => return Err("invalid string literal: invalid escape char \\".into()),
        });
    }
    Ok(out)
}

/// The normalized path `json_path` names under `node`, or why it names nothing.
pub(crate) fn normalize(json_path: &str, node: &Node) -> Result<String, String> {
    let mut path = String::new();
    let mut node = node;
    let toks = tokens(json_path);
    let mut it = toks.into_iter();
    let step = |name: String, path: &mut String, node: &mut &Node| -> Result<(), String> {
        if node.has_fields() {
            *path = child(path, &name);
            *node = node
                .props
                .get(&name)
                .ok_or("does not refer to a valid field")?;
        } else if let Some(additional) = node.additional.as_deref() {
            *path = key(path, &name);
            *node = additional;
        } else {
            return Err("does not refer to a valid field".into());
        }
        Ok(())
    };
    while let Some(tok) = it.next() {
        match tok {
            "[" => {
                let quoted = it.next().ok_or("unexpected end of JSON path")?;
                if quoted.len() < 2 || !quoted.starts_with('\'') || !quoted.ends_with('\'') {
                    return Err(format!("expected single quoted string but got {quoted}"));
                }
                let name = unescape_single_quote(&quoted[1..quoted.len() - 1])?;
                step(name, &mut path, &mut node)?;
                match it.next() {
                    Some("]") => {}
                    Some(other) => return Err(format!("expected ] but got {other}")),
                    None => return Err("unexpected end of JSON path".into()),
                }
            }
            "." => {
                let name = it.next().ok_or("unexpected end of JSON path")?;
                step(name.to_owned(), &mut path, &mut node)?;
            }
            other => return Err(format!("expected [ or . but got: {other}")),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Node {
        let s: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps =
            serde_json::from_value(serde_json::json!({
                "type": "object",
                "properties": {
                    "a": {"type": "object", "properties": {"b": {"type": "string"}}},
                    "m": {"type": "object", "additionalProperties": {"type": "string"}},
                    "list": {"type": "array", "items": {"type": "string"}}
                }
            }))
            .unwrap();
        Node::new(&s, false)
    }

    #[test]
    fn normalizes_and_rejects() {
        let n = schema();
        assert_eq!(normalize(".a.b", &n).unwrap(), "a.b");
        assert_eq!(normalize("['a'].b", &n).unwrap(), "a.b");
        assert_eq!(normalize(".m['x.y']", &n).unwrap(), "m[x.y]");
        assert_eq!(
            normalize(".a.c", &n).unwrap_err(),
            "does not refer to a valid field"
        );
        assert_eq!(
            normalize(".list[0]", &n).unwrap_err(),
            "expected single quoted string but got 0"
        );
    }
}
