//! Errors as HTTP answers: always JSON `{"error": {"kind", "message"}}` with
//! a fitting status; never a 500 for bad input.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub use crate::wire::{ErrorBody, ErrorDetail};
use crate::Error;

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::BadRequest(_) | Error::InvalidComponent(_) => StatusCode::BAD_REQUEST,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::TypeMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Dependency(_) => StatusCode::CONFLICT,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::EngineGone(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error type of every handler.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status.is_server_error() {
            tracing::error!("{}", self.0);
        } else {
            tracing::debug!(status = status.as_u16(), "{}", self.0);
        }
        let body = ErrorBody { error: ErrorDetail { kind: self.0.kind().to_string(), message: self.0.to_string() } };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
