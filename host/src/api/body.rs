//! Request bodies read with our own errors: JSON parse failures, unknown
//! fields and oversized bodies answer as JSON errors (400, 413) like the rest.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use super::error::ApiError;
use super::AppState;
use crate::Error;

/// Reads the body, mapping a too-large body to 413.
pub async fn read_bytes<S: Send + Sync>(req: Request, state: &S, limit_hint: usize) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(Error::TooLarge(format!("the request body exceeds the limit of {limit_hint} bytes")))
        } else {
            ApiError(Error::BadRequest(format!("cannot read the request body: {rej}")))
        }
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError(Error::BadRequest("the request body is empty; a JSON object is expected".into())));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError(Error::BadRequest(format!("invalid JSON body: {e}"))))
}

/// `Json<T>` with wasmpar's error answers.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(req, state, state.controller.runtime.limits.body_max).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// `Query<T>` with wasmpar's error answers (a missing or malformed
/// parameter is a JSON 400 naming it).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rej| ApiError(Error::BadRequest(format!("bad query string: {}", rej.body_text()))))
    }
}

/// `Path<T>` with wasmpar's error answers.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rej| ApiError(Error::BadRequest(format!("bad path: {}", rej.body_text()))))
    }
}
