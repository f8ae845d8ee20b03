//! Bootstrap tokens (`<id>.<secret>`, six and sixteen of `[a-z0-9]`): a joining node's first
//! credential. Each is a `bootstrap.kubernetes.io/token` Secret named `bootstrap-token-<id>`
//! in kube-system; a valid one authenticates as `system:bootstrap:<id>` in
//! `system:bootstrappers` (plus its `auth-extra-groups`).

use base64::Engine;
use serde_json::Value;

use super::UserInfo;
use crate::error::ApiResult;
use crate::registry::Registry;

pub const GROUP: &str = "system:bootstrappers";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// Splits a token into (id, secret) if it has the bootstrap token form.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

fn data(secret: &Value, key: &str) -> Option<String> {
    let b = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    String::from_utf8(raw).ok()
}

/// The user a bootstrap token stands for; `None` when it is not a valid one.
pub async fn authenticate(registry: &Registry, token: &str) -> ApiResult<Option<UserInfo>> {
    let Some((id, token_secret)) = parse(token) else {
        return Ok(None);
    };
    let Some(info) = crate::resources::Catalog::new()
        .by_kind("", "Secret")
        .cloned()
    else {
        return Ok(None);
    };
    let secret = match registry
        .get(&info, Some("kube-system"), &format!("bootstrap-token-{id}"))
        .await
    {
        Ok(s) => s,
        Err(e) if e.code == 404 => return Ok(None),
        Err(e) => return Err(e),
    };
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE)
        || secret.pointer("/metadata/deletionTimestamp").is_some()
        || data(&secret, "token-id").as_deref() != Some(id)
        || data(&secret, "usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return Ok(None);
    }
    // Compared in constant time: the id is public, the secret is not.
    let want = data(&secret, "token-secret").unwrap_or_default();
    if want.len() != token_secret.len()
        || want
            .bytes()
            .zip(token_secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return Ok(None);
    }
    if let Some(exp) = data(&secret, "expiration") {
        let expired =
            time::OffsetDateTime::parse(&exp, &time::format_description::well_known::Rfc3339)
                .map(|t| t < time::OffsetDateTime::now_utc())
                .unwrap_or(true);
        if expired {
            return Ok(None);
        }
    }
    let mut groups = vec![GROUP.to_string()];
    for g in data(&secret, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| g.starts_with("system:bootstrappers:"))
    {
        groups.push(g.to_string());
    }
    Ok(Some(
        UserInfo::new(format!("system:bootstrap:{id}"), groups).authenticated(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_form() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("abcde.0123456789abcdef"), None);
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("eyJhbGciOi.x.y"), None);
    }
}
