//! A request body that can be sent again after a failed connection attempt.
//!
//! The client consumes the request it sends, body included, even when connecting fails.
//! The body is therefore parked in a shared slot and taken out only when the connection
//! first polls it, which happens after connecting: a connect failure leaves it in the slot
//! for the next endpoint. Once taken, the request is no longer retried.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

type Slot = Arc<Mutex<Option<Incoming>>>;

/// The client's request body, shareable between attempts.
#[derive(Clone)]
pub struct Parked(Option<Slot>);

impl Parked {
    /// Parks `body`; an empty body needs no slot (it is never polled and always resendable).
    pub fn new(body: Incoming) -> Self {
        if body.is_end_stream() {
            Parked(None)
        } else {
            Parked(Some(Arc::new(Mutex::new(Some(body)))))
        }
    }

    /// Whether an attempt may still be made: the body was not taken by an earlier one.
    pub fn available(&self) -> bool {
        match &self.0 {
            None => true,
            Some(slot) => slot.lock().map(|s| s.is_some()).unwrap_or(false),
        }
    }

    /// The body for one attempt.
    pub fn attempt(&self) -> RetryBody {
        RetryBody {
            slot: self.0.clone(),
            body: None,
        }
    }
}

/// The body of one attempt: takes the parked body on first poll.
pub struct RetryBody {
    slot: Option<Slot>,
    body: Option<Incoming>,
}

impl RetryBody {
    fn with_parked<T>(&self, f: impl FnOnce(Option<&Incoming>) -> T) -> T {
        if let Some(b) = &self.body {
            return f(Some(b));
        }
        match &self.slot {
            None => f(None),
            Some(slot) => {
                let guard = slot.lock().unwrap_or_else(|e| e.into_inner());
                f(guard.as_ref())
            }
        }
    }
}

impl Body for RetryBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.body.is_none() {
            let taken = match &self.slot {
                None => return Poll::Ready(None),
                Some(slot) => slot.lock().unwrap_or_else(|e| e.into_inner()).take(),
            };
            match taken {
                Some(b) => self.body = Some(b),
                // Another attempt has it (cannot happen: attempts run one after another).
                None => return Poll::Ready(None),
            }
        }
        match self.body.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.with_parked(|b| b.is_none_or(Body::is_end_stream))
    }

    fn size_hint(&self) -> SizeHint {
        self.with_parked(|b| {
            b.map(Body::size_hint)
                .unwrap_or_else(|| SizeHint::with_exact(0))
        })
    }
}
