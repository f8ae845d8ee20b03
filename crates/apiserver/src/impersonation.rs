//! Impersonation (`kubectl --as`, `--as-group`): a request carrying `Impersonate-*` headers
//! is served as that user when the requester may `impersonate` each part of it.

use http::HeaderMap;

use crate::authn::{AUTHENTICATED, UserInfo};
use crate::authz::{Attributes, Authorizer};
use crate::error::ApiResult;

const SA_PREFIX: &str = "system:serviceaccount:";

/// The user to serve the request as: `user` itself, or the one it impersonates.
pub fn impersonate(authz: &Authorizer, user: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let Some(name) = values("impersonate-user").into_iter().next() else {
        // Groups or extras without a user are refused upstream; so here.
        if headers.contains_key("impersonate-group") {
            return Err(crate::error::ApiError::bad_request(
                "requested [{Group  }] without impersonating a user",
            ));
        }
        return Ok(user);
    };
    let check = |resource: &str, namespace: &str, name: &str, sub: &str| {
        authz.check(&Attributes {
            user: user.clone(),
            verb: "impersonate".into(),
            is_resource_request: true,
            // Users, groups and service accounts are core kinds; uids and extras are
            // authentication.k8s.io's.
            api_group: if matches!(resource, "uids" | "userextras") {
                "authentication.k8s.io".into()
            } else {
                String::new()
            },
            resource: resource.into(),
            subresource: sub.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: String::new(),
        })
    };
    let mut groups: Vec<String> = Vec::new();
    if let Some(sa) = name.strip_prefix(SA_PREFIX) {
        let (ns, sa_name) = sa.split_once(':').unwrap_or((sa, ""));
        check("serviceaccounts", ns, sa_name, "")?;
        groups.push("system:serviceaccounts".into());
        groups.push(format!("system:serviceaccounts:{ns}"));
    } else {
        check("users", "", &name, "")?;
    }
    for g in values("impersonate-group") {
        check("groups", "", &g, "")?;
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let uid = values("impersonate-uid")
        .into_iter()
        .next()
        .unwrap_or_default();
    if !uid.is_empty() {
        check("uids", "", &uid, "")?;
    }
    let mut extra = std::collections::BTreeMap::new();
    for (k, v) in headers.iter() {
        if let Some(key) = k.as_str().strip_prefix("impersonate-extra-")
            && let Ok(v) = v.to_str()
        {
            check("userextras", "", v, key)?;
            extra
                .entry(key.to_string())
                .or_insert_with(Vec::new)
                .push(v.to_string());
        }
    }
    let mut u = UserInfo {
        name,
        uid,
        groups,
        extra,
    };
    if !u.is_anonymous() && !u.in_group(AUTHENTICATED) {
        u.groups.push(AUTHENTICATED.into());
    }
    Ok(u)
}
