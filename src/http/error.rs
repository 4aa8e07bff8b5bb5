//! Domain errors to HTTP: status plus a JSON body `{"error", "code", "field"?}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Error;

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error on its way to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    /// Errors that never reach the core: malformed JSON, bad path parameters.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody { error: message.into(), code, field: None },
        }
    }

    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: message.into(), code, field: None } }
    }
}

/// Every domain error class decides its status here; no catch-all arm, so a new class
/// does not compile until it is mapped.
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::ModelNotFound { .. } | Error::VersionNotFound { .. } | Error::AliasNotFound { .. } => {
            StatusCode::NOT_FOUND
        }
        Error::EntityNotFound { .. } | Error::StaleFeatures { .. } | Error::FeatureMissing { .. } => {
            StatusCode::NOT_FOUND
        }
        Error::InvalidInput { .. } | Error::TooManyRows { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::VersionUnavailable { .. } | Error::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        Error::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Inference { .. } | Error::Registry(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::RegistrySource(_) => StatusCode::BAD_GATEWAY,
        Error::VersionRefused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::AliasUnchanged { .. } | Error::NothingToRollBack { .. } => StatusCode::CONFLICT,
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let field = match &error {
            Error::InvalidInput { field, .. } => Some(field.clone()),
            Error::TooManyRows { .. } => Some("rows".to_string()),
            Error::ModelNotFound { .. }
            | Error::VersionNotFound { .. }
            | Error::AliasNotFound { .. }
            | Error::VersionUnavailable { .. }
            | Error::EntityNotFound { .. }
            | Error::StaleFeatures { .. }
            | Error::FeatureMissing { .. }
            | Error::StoreUnavailable(_)
            | Error::Timeout(_)
            | Error::Overloaded { .. }
            | Error::Inference { .. }
            | Error::VersionRefused { .. }
            | Error::AliasUnchanged { .. }
            | Error::NothingToRollBack { .. }
            | Error::Registry(_)
            | Error::RegistrySource(_) => None,
        };
        ApiError {
            status: status_of(&error),
            body: ErrorBody { error: error.to_string(), code: error.code(), field },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.status == StatusCode::TOO_MANY_REQUESTS;
        let mut response = (self.status, Json(self.body)).into_response();
        if retry {
            // Overload is momentary: a client may come back at once.
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}
