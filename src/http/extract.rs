//! Extractors every costly route starts with, in this order: [`Admitted`] (a permit of
//! admission control, or 429 at once: a refusal reads no body), [`PredictHeaders`] (what
//! the headers ask for, checked, without a copy of the header map) and [`Body`] (the whole
//! request body, read under the body read timeout and the size limit: a client that
//! trickles its body is answered 408 and let go, rather than holding a connection and its
//! buffers). As extractors, not middleware, they add no layer to every request.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Bytes, HttpBody as _};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use http_body_util::BodyExt;

use super::error::ApiError;
use crate::predict::{Permit, Predictor};

/// A place among the requests in flight, held until the handler returns.
pub struct Admitted(#[allow(dead_code)] pub Permit);

impl<S: Send + Sync> FromRequestParts<S> for Admitted
where
    Predictor: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Predictor::from_ref(state).try_admit().map(Admitted).map_err(ApiError::from)
    }
}

/// What a predict request's headers ask for: the client's own deadline
/// ([`super::TIMEOUT_HEADER`]) and its id for the request ([`super::REQUEST_ID_HEADER`]);
/// a malformed one is answered 400 `invalid_header`, naming it.
pub struct PredictHeaders {
    pub timeout: Option<Duration>,
    pub request_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PredictHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let invalid = |message| ApiError::bad_request("invalid_header", message);
        let timeout = super::client_timeout(&parts.headers).map_err(invalid)?;
        let request_id = match parts.headers.get(super::REQUEST_ID_HEADER) {
            None => None,
            Some(value) => {
                let id = value.to_str().ok().filter(|id| crate::observe::request_id::check(id).is_ok());
                let rule = crate::observe::request_id::RULE;
                let id = id.ok_or_else(|| invalid(format!("header {}: {rule}", super::REQUEST_ID_HEADER)))?;
                Some(id.to_owned())
            }
        };
        Ok(PredictHeaders { timeout, request_id })
    }
}

/// How a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub timeout: Duration,
    pub max_bytes: usize,
}

impl FromRef<Predictor> for BodyLimits {
    fn from_ref(p: &Predictor) -> BodyLimits {
        let limits = p.limits();
        BodyLimits { timeout: limits.body_read_timeout, max_bytes: limits.max_body_bytes }
    }
}

/// The request body, whole.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body
where
    BodyLimits: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let BodyLimits { timeout, max_bytes } = BodyLimits::from_ref(state);
        let mut read = std::pin::pin!(read_body(request.into_body(), max_bytes));
        // A body already here (nearly always: it came with the headers) is read without
        // arming the read timeout's timer.
        let now = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        let read = match now {
            Poll::Ready(read) => read,
            Poll::Pending => match tokio::time::timeout(timeout, read).await {
                Ok(read) => read,
                Err(_) => {
                    let message =
                        format!("the request body did not arrive within {} ms", timeout.as_millis());
                    return Err(ApiError::with_status(StatusCode::REQUEST_TIMEOUT, "body_timeout", message));
                }
            },
        };
        match read {
            Ok(bytes) => Ok(Body(bytes)),
            Err(BodyError::TooLarge) => {
                let message = format!("the request body is larger than server.max_body_bytes ({max_bytes})");
                Err(ApiError::with_status(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message))
            }
            Err(BodyError::Read(e)) => {
                Err(ApiError::bad_request("bad_body", format!("the request body could not be read: {e}")))
            }
        }
    }
}

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// Reads the whole body, at most `max_bytes` of it; a body that declares more is refused
/// before any of it is read. Done as soon as the body says it has ended (a
/// `Content-Length` body once that many bytes have come) rather than when its sender
/// closes, and the body is dropped then: hyper's connection task feeds the body, and a
/// reader still waiting for the close has that task wake itself once more to deliver it
/// (with the timer skipped above, 0.6% fewer instructions per request: BENCHMARKS.md).
async fn read_body(mut body: axum::body::Body, max_bytes: usize) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > max_bytes as u64 {
        return Err(BodyError::TooLarge);
    }
    // The body as one chunk, kept without a copy (nearly always), or joined once a second
    // chunk comes.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut have = 0;
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else { break };
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else { continue };
        if data.len() > max_bytes - have {
            return Err(BodyError::TooLarge);
        }
        have += data.len();
        if first.is_none() && joined.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(earlier) = first.take() {
            joined.extend_from_slice(&earlier);
        }
        joined.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::Context;

    use axum::body::Body as AxumBody;
    use http_body::{Frame, SizeHint};

    use super::*;

    /// A body as hyper hands one over: its data, then (when `closes`) the end, else it
    /// never says more; `is_end_stream` once `length` bytes have come, as with a
    /// `Content-Length`.
    struct Fed {
        chunks: Vec<Bytes>,
        length: Option<u64>,
        sent: u64,
        closes: bool,
    }

    impl http_body::Body for Fed {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.chunks.is_empty() {
                return if self.closes { Poll::Ready(None) } else { Poll::Pending };
            }
            let chunk = self.chunks.remove(0);
            self.sent += chunk.len() as u64;
            Poll::Ready(Some(Ok(Frame::data(chunk))))
        }

        fn is_end_stream(&self) -> bool {
            self.length.is_some_and(|l| self.sent >= l)
        }

        fn size_hint(&self) -> SizeHint {
            self.length.map_or_else(SizeHint::default, |l| SizeHint::with_exact(l - self.sent))
        }
    }

    fn fed(chunks: &[&'static [u8]], length: Option<u64>, closes: bool) -> AxumBody {
        let chunks = chunks.iter().map(|c| Bytes::from_static(c)).collect();
        AxumBody::new(Fed { chunks, length, sent: 0, closes })
    }

    async fn read(body: AxumBody, max: usize) -> Result<Bytes, &'static str> {
        match tokio::time::timeout(Duration::from_secs(5), read_body(body, max)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(BodyError::TooLarge)) => Err("too large"),
            Ok(Err(BodyError::Read(_))) => Err("read"),
            Err(_) => Err("still waiting"),
        }
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_done_when_its_bytes_are_in_without_waiting_for_the_close() {
        assert_eq!(
            read(fed(&[b"{\"a\":", b"1}"], Some(7), false), 100).await.as_deref(),
            Ok(&b"{\"a\":1}"[..])
        );
        assert_eq!(read(fed(&[], Some(0), false), 100).await.as_deref(), Ok(&b""[..]));
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_read_to_its_end_in_order() {
        assert_eq!(read(fed(&[b"ab", b"", b"cd", b"e"], None, true), 5).await.as_deref(), Ok(&b"abcde"[..]));
        assert_eq!(read(fed(&[b"one"], None, true), 3).await.as_deref(), Ok(&b"one"[..]));
        assert_eq!(read(fed(&[b"ab"], None, false), 5).await, Err("still waiting"));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_by_its_declared_length_or_as_it_grows() {
        // Declared too long: refused before a byte is read (the body would never send one).
        assert_eq!(read(fed(&[], Some(6), false), 5).await, Err("too large"));
        assert_eq!(read(fed(&[b"abc", b"def"], None, true), 5).await, Err("too large"));
        assert_eq!(read(fed(&[b"abcdef"], None, true), 5).await, Err("too large"));
    }
}
