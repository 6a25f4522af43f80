//! Request bodies read with our own errors: JSON parse failures, unknown
//! fields and oversized bodies answer as JSON errors (400, 413) like the rest.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use std::sync::Arc;

use super::error::ApiError;
use super::AppState;
use crate::Error;

/// How much of an over-long body is read and dropped before answering 413,
/// so that an ordinary client sees the answer instead of a reset connection.
const DRAIN_BEYOND_LIMIT: usize = 256 << 20;

pub(crate) fn content_length(req: &Request) -> Option<usize> {
    req.headers().get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the body up to `limit` bytes; past it, drains (a bounded amount)
/// and answers 413 as JSON.
pub async fn read_bytes(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let too_large = || ApiError(Error::TooLarge(format!("the request body exceeds the limit of {limit} bytes")));
    let declared = content_length(&req);
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_BEYOND_LIMIT)) {
        return Err(too_large());
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    crate::pages::advise_huge_spare(buf.spare_capacity_mut());
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(Error::BadRequest(format!("cannot read the request body: {e}"))))?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            buf.extend_from_slice(&chunk);
        } else if total > limit.saturating_add(DRAIN_BEYOND_LIMIT) {
            break;
        }
    }
    if total > limit {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError(Error::BadRequest("the request body is empty; a JSON object is expected".into())));
    }
    serde_json::from_slice(bytes).or_else(|e| {
        let invalid = || ApiError(Error::BadRequest(format!("invalid JSON body: {e}")));
        let retried = whole_floats_as_integers(bytes).ok_or_else(invalid)?;
        serde_json::from_value(retried).map_err(|_| invalid())
    })
}

/// The top-level body fields the OpenAPI document types as integers
/// (`targets` as an id or a list of ids, `chunksize`, `retries`).
const INTEGER_FIELDS: [&str; 3] = ["targets", "chunksize", "retries"];

/// JSON Schema counts `2.0` as the integer 2 (and schemathesis sends it so);
/// serde does not. When the strict parse failed, this is the body with whole
/// floats in [`INTEGER_FIELDS`] (or in a list there) written as integers, or
/// `None` when there was none to rewrite. Nothing else is touched: `1.0` in
/// an argument or a namespace value stays a float.
fn whole_floats_as_integers(bytes: &[u8]) -> Option<serde_json::Value> {
    use serde_json::Value;
    fn whole(v: &mut Value) -> bool {
        // Beyond 2^53 a float no longer spells one integer.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        match v {
            Value::Number(n) if !(n.is_i64() || n.is_u64()) => match n.as_f64() {
                Some(x) if x.fract() == 0.0 && x.abs() <= EXACT => {
                    *v = Value::from(x as i64);
                    true
                }
                _ => false,
            },
            Value::Array(items) => {
                let mut changed = false;
                for item in items.iter_mut().filter(|item| item.is_number()) {
                    changed |= whole(item);
                }
                changed
            }
            _ => false,
        }
    }
    let mut body: Value = serde_json::from_slice(bytes).ok()?;
    let fields = body.as_object_mut()?;
    let mut changed = false;
    for key in INTEGER_FIELDS {
        if let Some(v) = fields.get_mut(key) {
            changed |= whole(v);
        }
    }
    changed.then_some(body)
}

/// `Json<T>` with wasmpar's error answers.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(req, state.controller.limits().body_max).await?;
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

/// A raw little-endian f64 body read straight into its final buffer: one
/// copy from the network's chunks, none after (the fast push route).
/// `tee` sees every chunk of the body as it arrives.
pub async fn read_f64s(req: Request, limit: usize, mut tee: impl FnMut(&bytes::Bytes)) -> Result<Vec<f64>, ApiError> {
    use futures::StreamExt;
    let declared = content_length(&req);
    let Some(len) = declared.filter(|n| n % 8 == 0 && *n <= limit) else {
        // Unknown or odd length: the general path (which also reports 413).
        let bytes = read_bytes(req, limit).await?;
        if bytes.len() % 8 != 0 {
            return Err(ApiError(Error::BadRequest(format!("{} bytes is not a whole number of float64 items", bytes.len()))));
        }
        tee(&bytes);
        return Ok(crate::value::array::f64s_from_le(&bytes));
    };
    let mut out = vec![0f64; len / 8];
    crate::pages::advise_huge(&mut out);
    let mut filled = 0usize;
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(Error::BadRequest(format!("cannot read the request body: {e}"))))?;
        if filled + chunk.len() > len {
            return Err(ApiError(Error::BadRequest("the body is longer than its Content-Length".into())));
        }
        copy_le_bytes_into(&mut out, filled, &chunk);
        tee(&chunk);
        filled += chunk.len();
    }
    if filled != len {
        return Err(ApiError(Error::BadRequest(format!("the body ended after {filled} of {len} bytes"))));
    }
    Ok(out)
}

/// Hand a body of exactly `len` bytes (its declared length) to `tee`, chunk
/// by chunk, keeping none of it.
pub async fn stream_body(req: Request, len: usize, mut tee: impl FnMut(&bytes::Bytes)) -> Result<(), ApiError> {
    use futures::StreamExt;
    let mut seen = 0usize;
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(Error::BadRequest(format!("cannot read the request body: {e}"))))?;
        seen += chunk.len();
        if seen > len {
            return Err(ApiError(Error::BadRequest("the body is longer than its Content-Length".into())));
        }
        tee(&chunk);
    }
    if seen != len {
        return Err(ApiError(Error::BadRequest(format!("the body ended after {seen} of {len} bytes"))));
    }
    Ok(())
}

/// Copy little-endian bytes into `out` at byte offset `at`.
fn copy_le_bytes_into(out: &mut [f64], at: usize, bytes: &[u8]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: every bit pattern is a valid f64, the byte view covers
        // exactly `out`'s memory, and the caller keeps `at + bytes.len()`
        // within it (checked above).
        let view = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), out.len() * 8) };
        view[at..at + bytes.len()].copy_from_slice(bytes);
    }
    #[cfg(not(target_endian = "little"))]
    {
        let mut view: Vec<u8> = out.iter().flat_map(|x| x.to_le_bytes()).collect();
        view[at..at + bytes.len()].copy_from_slice(bytes);
        for (x, c) in out.iter_mut().zip(view.chunks_exact(8)) {
            *x = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Targets;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        targets: Targets,
        chunksize: Option<usize>,
        #[serde(default)]
        args: Vec<serde_json::Value>,
    }

    #[test]
    fn whole_floats_are_integers_where_the_document_says_integer() {
        let spec: Spec =
            parse_json(br#"{"targets": [1.0, 3], "chunksize": 4.0, "args": [1.0]}"#).ok().unwrap_or_else(|| panic!("rejected"));
        assert_eq!(spec.targets, Targets::List(vec![1, 3]));
        assert_eq!(spec.chunksize, Some(4));
        // Values are not touched.
        assert_eq!(spec.args, vec![serde_json::json!(1.0)]);
        let spec: Spec = parse_json(br#"{"targets": -2.0, "chunksize": null}"#).ok().unwrap_or_else(|| panic!("rejected"));
        assert_eq!(spec.targets, Targets::Id(-2));
    }

    #[test]
    fn fractions_and_other_errors_stay_errors() {
        for body in
            [&br#"{"targets": 1.5}"#[..], br#"{"targets": 1.0, "chunksize": 2.5}"#, br#"{"targets": 1.0, "extra": 1}"#, b"{", b"[1.0]"]
        {
            match parse_json::<Spec>(body) {
                Err(ApiError(Error::BadRequest(m))) => assert!(m.starts_with("invalid JSON body"), "{m}"),
                Err(ApiError(e)) => panic!("{e}"),
                Ok(s) => panic!("accepted {s:?}"),
            }
        }
    }
}
