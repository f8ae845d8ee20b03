use std::path::PathBuf;
use std::time::Duration;

/// An error from the CRI runtime or from reaching it.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("invalid CRI endpoint {0:?}: only unix sockets (unix:///path or /path) are supported")]
    InvalidEndpoint(String),

    #[error("CRI runtime at {} did not answer within {waited:?}: {last}", socket.display())]
    NotReady {
        socket: PathBuf,
        waited: Duration,
        last: String,
    },

    /// The runtime answered with an error (or the call failed in transport).
    #[error("CRI {op}({target}): {}: {}", status.code(), status.message())]
    Rpc {
        op: &'static str,
        /// What the call was about (an ID, an image, …); empty when nothing.
        target: String,
        /// Boxed: `tonic::Status` is large and every `Result` would carry its size.
        #[source]
        status: Box<tonic::Status>,
    },

    #[error("CRI {op}({target}): the response has no {field}")]
    MissingField {
        op: &'static str,
        target: String,
        field: &'static str,
    },
}

impl CriError {
    pub(crate) fn rpc(op: &'static str, target: impl Into<String>, status: tonic::Status) -> Self {
        CriError::Rpc {
            op,
            target: target.into(),
            status: Box::new(status),
        }
    }

    /// The gRPC code, when the runtime answered.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            CriError::Rpc { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// The object (sandbox, container, image) does not exist: usually fine when removing.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(tonic::Code::NotFound)
    }

    /// The runtime is not reachable (e.g. containerd is restarting); worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CriError::NotReady { .. })
            || matches!(
                self.code(),
                Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
            )
    }

    /// The runtime does not implement this RPC (containerd 1.6 lacks the newest ones).
    pub fn is_unimplemented(&self) -> bool {
        self.code() == Some(tonic::Code::Unimplemented)
    }
}
