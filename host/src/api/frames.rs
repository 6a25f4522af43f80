//! Framed task bodies over HTTP (`value::frames`): a `POST /v1/tasks` whose
//! `Content-Type` is `application/x-wasmpar-frames` carries its arrays as
//! raw buffers, and an answer asked for with that media type in `Accept`
//! gives its arrays back the same way. Everything else is plain JSON.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::{parse_json, read_bytes};
use super::error::ApiError;
use super::AppState;
use crate::scheduler::{TaskSpec, TaskView};
use crate::value::frames::with_buffers;
use crate::value::{Frames, FRAMES_MEDIA_TYPE};
use crate::Error;

fn is_frames(v: Option<&HeaderValue>) -> bool {
    v.and_then(|v| v.to_str().ok())
        .is_some_and(|s| s.split(',').any(|part| part.split(';').next().map(str::trim) == Some(FRAMES_MEDIA_TYPE)))
}

/// Whether the client takes framed answers (`Accept` names the media type).
pub fn wants_frames(headers: &HeaderMap) -> bool {
    is_frames(headers.get(header::ACCEPT))
}

/// A task spec from a JSON body or a framed one (its buffers in `spec.buffers`).
pub struct TaskBody(pub TaskSpec);

impl FromRequest<Arc<AppState>> for TaskBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let framed = is_frames(req.headers().get(header::CONTENT_TYPE));
        let bytes = read_bytes(req, state.controller.limits().body_max).await?;
        if !framed {
            return parse_json(&bytes).map(TaskBody);
        }
        let frames = Frames::parse(bytes).map_err(|m| ApiError(Error::BadRequest(m)))?;
        let mut spec: TaskSpec = parse_json(&frames.document)?;
        spec.buffers = frames.buffers;
        Ok(TaskBody(spec))
    }
}

/// A task's view as its answer: framed when `framed`, else JSON.
pub fn view_answer(status: StatusCode, view: &TaskView, framed: bool) -> Response {
    if !framed {
        return (status, axum::Json(view)).into_response();
    }
    // The view without its result (small), then the result rebuilt with its
    // arrays as buffers: the result is read once, not cloned first.
    let bare = view.without_result();
    let mut doc = match serde_json::to_value(&bare) {
        Ok(v) => v,
        Err(e) => return ApiError(Error::Internal(format!("cannot encode the answer: {e}"))).into_response(),
    };
    let mut buffers = Vec::new();
    if let (Some(result), Some(obj)) = (view.result.as_ref(), doc.as_object_mut()) {
        obj.insert("result".into(), with_buffers(result, &mut buffers));
    }
    let text = match serde_json::to_vec(&doc) {
        Ok(t) => t,
        Err(e) => return ApiError(Error::Internal(format!("cannot encode the answer: {e}"))).into_response(),
    };
    // The chunks go out as they are (the buffers not copied into one body);
    // the length is said up front, so the answer is not chunk-encoded.
    let chunks = Frames::write(text, buffers);
    let length: usize = chunks.iter().map(|c| c.len()).sum();
    let body = axum::body::Body::from_stream(futures::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>)));
    let headers =
        [(header::CONTENT_TYPE, HeaderValue::from_static(FRAMES_MEDIA_TYPE)), (header::CONTENT_LENGTH, HeaderValue::from(length))];
    (status, headers, body).into_response()
}
