//! Extractors every costly route starts with, in this order: [`Admitted`] (a permit of
//! admission control, or 429 at once: a refusal reads no body), [`PredictHeaders`] (what
//! the headers ask for, checked, without a copy of the header map) and [`Body`] (the whole
//! request body, read under the body read timeout and the size limit: a client that
//! trickles its body is answered 408 and let go, rather than holding a connection and its
//! buffers). As extractors, not middleware, they add no layer to every request.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

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
        match tokio::time::timeout(timeout, axum::body::to_bytes(request.into_body(), max_bytes)).await {
            Ok(Ok(bytes)) => Ok(Body(bytes)),
            Ok(Err(e)) => {
                let too_large =
                    std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    let message =
                        format!("the request body is larger than server.max_body_bytes ({max_bytes})");
                    Err(ApiError::with_status(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message))
                } else {
                    Err(ApiError::bad_request("bad_body", format!("the request body could not be read: {e}")))
                }
            }
            Err(_) => {
                let message = format!("the request body did not arrive within {} ms", timeout.as_millis());
                Err(ApiError::with_status(StatusCode::REQUEST_TIMEOUT, "body_timeout", message))
            }
        }
    }
}
