//! The proxy's own answers ([`Local`]): plain text to HTTP clients; to gRPC clients
//! (`content-type: application/grpc…`) a gRPC "trailers-only" response: HTTP 200, no body,
//! `grpc-status` and `grpc-message` in the headers (which end the stream). gRPC clients
//! read the status from there; from an HTTP error status they can only guess one (gRPC's
//! HTTP-to-gRPC mapping turns a 500 into `UNKNOWN`), and GRPCRoute requires `UNAVAILABLE`
//! for an invalid backendRef.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::proxy::ProxyBody;

/// A response of the proxy's own, as plain text.
pub fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether a request is gRPC: its `content-type` starts with `application/grpc`
/// (`application/grpc`, `application/grpc+proto`, …; media types are case-insensitive).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .get(..GRPC.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(GRPC))
    })
}

/// The gRPC status codes the proxy answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum GrpcCode {
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// A trailers-only gRPC response: 200, `content-type: application/grpc`, `grpc-status`,
/// `grpc-message` (static ASCII without `%`, so it needs no percent-encoding), no body.
pub fn trailers_only(code: GrpcCode, message: &'static str) -> Response<ProxyBody> {
    // An empty `Full` is at its end already: hyper sends the headers with END_STREAM.
    let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code as u16));
    h.insert("grpc-message", HeaderValue::from_static(message));
    r
}

/// Why the proxy answers a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// No Gateway rule and no Ingress rule matches.
    NoRoute,
    /// The rule's pick is an invalid backendRef (or it has none).
    InvalidBackend,
    /// The backend has no ready endpoint.
    NoEndpoints,
    /// Connecting failed on every endpoint tried.
    Unreachable,
    /// The request to the endpoint failed after connecting.
    BackendFailed,
    /// No response headers within `response_timeout`.
    Timeout,
    /// The request's path makes no URI for the endpoint.
    BadRequest,
    /// A RequestRedirect made an invalid `Location`.
    InvalidRedirect,
    /// A URLRewrite made an invalid URI.
    InvalidRewrite,
}

impl Local {
    /// The HTTP answer (what HTTP clients get; unchanged for them).
    pub fn http(self) -> (StatusCode, &'static str) {
        match self {
            Local::NoRoute => (StatusCode::NOT_FOUND, "default backend - 404\n"),
            Local::InvalidBackend => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error: no valid backend\n",
            ),
            Local::NoEndpoints => (
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: no endpoints\n",
            ),
            Local::Unreachable => (
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: no endpoint reachable\n",
            ),
            Local::BackendFailed => (StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"),
            Local::Timeout => (StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n"),
            Local::BadRequest => (StatusCode::BAD_REQUEST, "400 Bad Request\n"),
            Local::InvalidRedirect => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error: invalid redirect\n",
            ),
            Local::InvalidRewrite => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error: invalid rewrite\n",
            ),
        }
    }

    /// The gRPC answer: `UNIMPLEMENTED` when nothing routes the call (what upstream's
    /// GRPCRoute conformance tests expect of an unmatched method or host), `UNAVAILABLE`
    /// when its backend cannot take it (the GRPCRoute spec's code for invalid backendRefs;
    /// what gRPC's mapping makes of 502/503/504), `INTERNAL` for the proxy's own failures.
    pub fn grpc(self) -> (GrpcCode, &'static str) {
        match self {
            Local::NoRoute => (GrpcCode::Unimplemented, "no route matches the call"),
            Local::InvalidBackend => (GrpcCode::Unavailable, "no valid backend"),
            Local::NoEndpoints => (GrpcCode::Unavailable, "no ready endpoints"),
            Local::Unreachable => (GrpcCode::Unavailable, "no endpoint reachable"),
            Local::BackendFailed => (GrpcCode::Unavailable, "request to the endpoint failed"),
            Local::Timeout => (
                GrpcCode::Unavailable,
                "no response from the endpoint in time",
            ),
            Local::BadRequest => (GrpcCode::Internal, "the path makes no valid URI"),
            Local::InvalidRedirect => (GrpcCode::Internal, "invalid redirect"),
            Local::InvalidRewrite => (GrpcCode::Internal, "invalid rewrite"),
        }
    }

    /// The answer for a gRPC request (`grpc`) or an HTTP one.
    pub fn response(self, grpc: bool) -> Response<ProxyBody> {
        if grpc {
            let (code, message) = self.grpc();
            trailers_only(code, message)
        } else {
            let (status, text) = self.http();
            plain(status, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    fn grpc_request(ct: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(ct).unwrap_or_else(|e| panic!("{e}")),
        );
        is_grpc(&h)
    }

    #[test]
    fn grpc_requests_by_content_type() {
        assert!(grpc_request("application/grpc"));
        assert!(grpc_request("application/grpc+proto"));
        assert!(grpc_request("Application/GRPC+json"));
        assert!(!grpc_request("application/json"));
        assert!(!grpc_request("text/plain"));
        assert!(!grpc_request("application/grp"));
        assert!(!is_grpc(&HeaderMap::new()), "no content-type");
    }

    fn header<'a>(r: &'a Response<ProxyBody>, name: &str) -> Option<&'a str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn grpc_answers_are_trailers_only() {
        let want = [
            (Local::NoRoute, "12"),
            (Local::InvalidBackend, "14"),
            (Local::NoEndpoints, "14"),
            (Local::Unreachable, "14"),
            (Local::BackendFailed, "14"),
            (Local::Timeout, "14"),
            (Local::BadRequest, "13"),
            (Local::InvalidRedirect, "13"),
            (Local::InvalidRewrite, "13"),
        ];
        for (local, code) in want {
            let r = local.response(true);
            assert_eq!(r.status(), StatusCode::OK, "{local:?}");
            assert_eq!(header(&r, "content-type"), Some("application/grpc"));
            assert_eq!(header(&r, "grpc-status"), Some(code), "{local:?}");
            let msg = header(&r, "grpc-message").unwrap_or_default();
            assert_eq!(msg, local.grpc().1);
            // Sent as is: it must need no percent-encoding (printable ASCII, no `%`).
            assert!(
                !msg.is_empty() && msg.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%'),
                "{local:?}: {msg:?}"
            );
            assert!(r.body().is_end_stream(), "{local:?}: no body, no trailers");
            assert_eq!(r.body().size_hint().exact(), Some(0));
        }
    }

    #[test]
    fn http_answers_are_unchanged() {
        let want = [
            (Local::NoRoute, 404),
            (Local::InvalidBackend, 500),
            (Local::NoEndpoints, 503),
            (Local::Unreachable, 502),
            (Local::BackendFailed, 502),
            (Local::Timeout, 504),
            (Local::BadRequest, 400),
            (Local::InvalidRedirect, 500),
            (Local::InvalidRewrite, 500),
        ];
        for (local, status) in want {
            let r = local.response(false);
            assert_eq!(r.status().as_u16(), status, "{local:?}");
            assert_eq!(
                header(&r, "content-type"),
                Some("text/plain; charset=utf-8")
            );
            assert!(r.headers().get("grpc-status").is_none());
            assert_eq!(
                r.body().size_hint().exact(),
                u64::try_from(local.http().1.len()).ok()
            );
        }
        assert_eq!(Local::NoRoute.http().1, "default backend - 404\n");
    }
}
