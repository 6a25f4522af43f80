//! The handlers of API.md: small functions over typed extractors; the
//! scheduler decides, these only translate.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::body::{read_bytes, read_f64s, ApiPath, ApiQuery, JsonBody};
use super::error::{ApiResult, ErrorBody};
use super::frames::{view_answer, wants_frames, TaskBody};
use super::wire::*;
use super::AppState;
use crate::scheduler::{cut, InstallReport, RawData, Targets, TaskSpec, TaskView};
use crate::value::Dtype;
use crate::Error;

/// The longest a `?wait=` may hold an answer.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The largest `chunksize` and `retries` a task may give (the OpenAPI
/// document's `maximum` for both).
const MAX_COUNT: usize = u32::MAX as usize;

/// `?wait=` in seconds, clamped to [`MAX_WAIT`] before it becomes a
/// `Duration` (`Duration::from_secs_f64(1e30)` would panic).
fn wait_duration(w: f64) -> Result<Duration, Error> {
    if !(w.is_finite() && w >= 0.0) {
        return Err(Error::BadRequest(format!("wait must be a non-negative number of seconds, got {w}")));
    }
    Ok(Duration::from_secs_f64(w.min(MAX_WAIT.as_secs_f64())))
}

#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health, description = "the server is up")))]
pub async fn health(State(s): State<Arc<AppState>>) -> Json<Health> {
    Json(Health { status: "ok".into(), engines: s.controller.engine_count(), version: env!("CARGO_PKG_VERSION").into() })
}

#[utoipa::path(get, path = "/v1/engines", responses((status = 200, body = EngineList, description = "every engine")))]
pub async fn engines(State(s): State<Arc<AppState>>) -> Json<EngineList> {
    Json(EngineList { engines: s.controller.engines() })
}

#[utoipa::path(post, path = "/v1/components", params(UploadQuery),
    request_body(content = Binary, content_type = "application/wasm", description = "the component's bytes"),
    responses((status = 201, body = ComponentInfo, description = "compiled and registered under `name`"),
              (status = 400, body = ErrorBody, description = "not a component, or a bad name"),
              (status = 413, body = ErrorBody, description = "larger than the upload limit")))]
pub async fn upload(State(s): State<Arc<AppState>>, ApiQuery(q): ApiQuery<UploadQuery>, req: Request) -> ApiResult<impl IntoResponse> {
    let limit = s.controller.limits().upload_max;
    let body = read_bytes(req, limit).await?;
    if body.len() > limit {
        return Err(Error::TooLarge(format!("the component is {} bytes; the upload limit is {limit}", body.len())).into());
    }
    let info = s.controller.upload(q.name, body).await?;
    s.events.send(super::dashboard::DashboardEvent::ComponentsChanged { name: info.name.clone() });
    Ok((StatusCode::CREATED, Json(info)))
}

#[utoipa::path(get, path = "/v1/components", responses((status = 200, body = ComponentList, description = "every uploaded component")))]
pub async fn components(State(s): State<Arc<AppState>>) -> Json<ComponentList> {
    Json(ComponentList { components: s.controller.components() })
}

#[utoipa::path(get, path = "/v1/components/{name}", params(("name" = String, Path, description = "A component's name.", example = "seed")),
    responses((status = 200, body = ComponentInfo, description = "the component"),
              (status = 400, body = ErrorBody, description = "a bad path"),
              (status = 404, body = ErrorBody, description = "no such component")))]
pub async fn component(State(s): State<Arc<AppState>>, ApiPath(name): ApiPath<String>) -> ApiResult<Json<ComponentInfo>> {
    Ok(Json(s.controller.component(&name)?))
}

#[utoipa::path(delete, path = "/v1/components/{name}", params(("name" = String, Path, description = "A component's name.", example = "seed")),
    responses((status = 204, description = "removed"),
              (status = 400, body = ErrorBody, description = "a bad path"),
              (status = 404, body = ErrorBody, description = "no such component")))]
pub async fn delete_component(State(s): State<Arc<AppState>>, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    s.controller.remove_component(&name)?;
    s.events.send(super::dashboard::DashboardEvent::ComponentsChanged { name });
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/install",
    request_body(content = InstallRequest, example = json!({"component": "stats", "targets": "all"})),
    responses((status = 200, body = InstallReport, description = "installed"),
              (status = 400, body = ErrorBody, description = "a bad body or targets"),
              (status = 404, body = ErrorBody, description = "no such component or engine"),
              (status = 409, body = ErrorBody, description = "the component's own imports are not met"),
              (status = 413, body = ErrorBody, description = "the body is over the limit"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "an engine failed and was restarted")))]
pub async fn install(State(s): State<Arc<AppState>>, JsonBody(req): JsonBody<InstallRequest>) -> ApiResult<Json<InstallReport>> {
    Ok(Json(s.controller.install(&req.component, &req.targets).await?))
}

#[utoipa::path(post, path = "/v1/tasks",
    request_body(content = TaskSpec, example = json!({"op": "apply", "component": "seed", "function": "add3", "args": [1, 2, 3], "block": true})),
    responses((status = 200, body = TaskView, description = "finished (block: true)"),
              (status = 202, body = TaskView, description = "accepted (block: false)"),
              (status = 400, body = ErrorBody, description = "a bad body or targets"),
              (status = 404, body = ErrorBody, description = "no such component, function or engine"),
              (status = 409, body = ErrorBody, description = "the component's imports are not met"),
              (status = 413, body = ErrorBody, description = "the body or a sequence is over the limit"),
              (status = 422, body = ErrorBody, description = "an argument does not fit the function's type"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "no engine could take the work; retry")))]
pub async fn submit(State(s): State<Arc<AppState>>, headers: HeaderMap, TaskBody(spec): TaskBody) -> ApiResult<axum::response::Response> {
    let framed = wants_frames(&headers);
    for (field, n) in [("chunksize", spec.chunksize), ("retries", spec.retries)] {
        if n.is_some_and(|n| n > MAX_COUNT) {
            return Err(Error::BadRequest(format!("{field} must be at most {MAX_COUNT}")).into());
        }
    }
    let block = spec.block;
    let targets = serde_json::to_value(&spec.targets).unwrap_or_default();
    let task = s.controller.submit_off_runtime(spec).await?;
    let mut tracked = super::history::track(&s, &task, targets, block);
    if block {
        task.wait(Duration::MAX).await;
        // The result moves from the record into the answer (the record
        // keeps its status, error and timing), and the store shares it.
        let view = Arc::new(task.deliver());
        tracked.finished(view.clone());
        Ok(view_answer(StatusCode::OK, &view, framed))
    } else {
        Ok(view_answer(StatusCode::ACCEPTED, &task.view(), framed))
    }
}

#[utoipa::path(get, path = "/v1/tasks/{id}", params(("id" = String, Path, description = "The task's id."), WaitQuery),
    responses((status = 200, body = TaskView, description = "the task as it stands"),
              (status = 400, body = ErrorBody, description = "a bad `wait`"),
              (status = 404, body = ErrorBody, description = "no such task")))]
pub async fn task(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<axum::response::Response> {
    let wait = q.wait.map(wait_duration).transpose()?;
    let Ok(task) = s.controller.task(&id) else {
        // Not held any more (evicted, or from before a restart): as stored.
        return Ok(super::history::from_store(&s, &id).await?.into_response());
    };
    if let Some(w) = wait {
        task.wait(w).await;
    }
    Ok(view_answer(StatusCode::OK, &task.view(), wants_frames(&headers)))
}

#[utoipa::path(delete, path = "/v1/tasks/{id}", params(("id" = String, Path, description = "The task's id.")),
    responses((status = 200, body = TaskView, description = "the task, cancelled unless it had finished"),
              (status = 400, body = ErrorBody, description = "a bad path"),
              (status = 404, body = ErrorBody, description = "no such task")))]
pub async fn cancel(State(s): State<Arc<AppState>>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<TaskView>> {
    Ok(Json(s.controller.cancel(&id).await?))
}

#[utoipa::path(put, path = "/v1/namespace",
    request_body(content = PushRequest, example = json!({"targets": "all", "values": {"x": [1, 2, 3, 4], "y": 5}})),
    responses((status = 200, body = EngineIds, description = "the engines that hold the values now"),
              (status = 400, body = ErrorBody, description = "a bad body, value or targets"),
              (status = 404, body = ErrorBody, description = "no such engine"),
              (status = 413, body = ErrorBody, description = "the body is over the limit"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "an engine failed and was restarted")))]
pub async fn push(State(s): State<Arc<AppState>>, headers: HeaderMap, req: Request) -> ApiResult<Json<EngineIds>> {
    // Long array forms decoded while the body arrives (api/push_stream.rs);
    // other bodies with their base64 borrowed from the bytes
    // (api/push_body.rs); any body that does not parse so gets the
    // ordinary parse and its errors.
    let bytes = match super::push_stream::read(req, s.controller.limits().body_max).await?.into_values() {
        Ok((targets, values)) => {
            let engines = s.controller.push_values(&targets, values).await?;
            s.metrics.pushed(body_len(&headers));
            return Ok(Json(EngineIds { engines }));
        }
        Err(bytes) => bytes,
    };
    let engines = match serde_json::from_slice::<super::push_body::PushBody>(&bytes) {
        Ok(body) => {
            let (targets, values) = body.into_parts();
            s.controller.push_values(&targets, values).await?
        }
        Err(_) => {
            let req: PushRequest = super::body::parse_json(&bytes)?;
            s.controller.push(&req.targets, &req.values).await?
        }
    };
    s.metrics.pushed(body_len(&headers));
    Ok(Json(EngineIds { engines }))
}

#[utoipa::path(get, path = "/v1/namespace", params(PullQuery),
    responses((status = 200, body = PullAnswer, description = "each engine's values, in engine order"),
              (status = 400, body = ErrorBody, description = "a bad query"),
              (status = 404, body = ErrorBody, description = "no such engine, or a name missing on one"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "an engine failed and was restarted")))]
pub async fn pull(State(s): State<Arc<AppState>>, ApiQuery(q): ApiQuery<PullQuery>) -> ApiResult<axum::response::Response> {
    let names: Vec<String> = q.names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
    // The answer as JSON chunks: an array shared by several engines is
    // base64-encoded once, piece by piece while the pieces before it are
    // sent, and sent from the same memory for each (value/chunks.rs).
    let mut chunks = s.controller.pull_json(&targets_query(&q.targets), &names, q.encoding.unwrap_or_default()).await?;
    let len = chunks.len();
    s.metrics.pulled(len as u64);
    let pieces = chunks.stream();
    let body = axum::body::Body::from_stream(futures::stream::unfold(pieces, |mut rx| async move {
        rx.recv().await.map(|piece| (Ok::<_, std::convert::Infallible>(piece), rx))
    }));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json".to_string()), (axum::http::header::CONTENT_LENGTH, len.to_string())], body)
        .into_response())
}

#[utoipa::path(post, path = "/v1/scatter",
    request_body(content = ScatterRequest, example = json!({"name": "x", "values": [1, 2, 3, 4], "targets": "all"})),
    responses((status = 200, body = EngineIds, description = "the engines that got a chunk"),
              (status = 400, body = ErrorBody, description = "a bad body, values or targets"),
              (status = 404, body = ErrorBody, description = "no such engine"),
              (status = 413, body = ErrorBody, description = "the body is over the limit"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "an engine failed and was restarted")))]
pub async fn scatter(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ScatterRequest>,
) -> ApiResult<Json<EngineIds>> {
    let engines = s.controller.scatter(&req.name, &req.values, &req.targets).await?;
    s.metrics.pushed(body_len(&headers));
    Ok(Json(EngineIds { engines }))
}

#[utoipa::path(get, path = "/v1/gather", params(GatherQuery),
    responses((status = 200, body = GatherAnswer, description = "the engines' lists concatenated in engine order"),
              (status = 400, body = ErrorBody, description = "a bad query, or a value that is not a list"),
              (status = 404, body = ErrorBody, description = "no such engine, or the name missing on one"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "an engine failed and was restarted")))]
pub async fn gather(State(s): State<Arc<AppState>>, ApiQuery(q): ApiQuery<GatherQuery>) -> ApiResult<axum::response::Response> {
    let values = s.controller.gather(&q.name, &targets_query(&q.targets), q.encoding.unwrap_or_default()).await?;
    pulled_json(&s, &GatherAnswer { values })
}

#[utoipa::path(post, path = "/v1/shutdown", responses((status = 202, description = "the server stops after answering")))]
pub async fn shutdown(State(s): State<Arc<AppState>>) -> StatusCode {
    s.shutdown.notify_one();
    StatusCode::ACCEPTED
}

/// Fault injection for tests (only with `--enable-fault-injection`): the
/// engine's thread panics at its next call, or with `?exit=true` ends when
/// it reaches this request, dropping the jobs queued behind it.
pub async fn inject_panic(
    State(s): State<Arc<AppState>>,
    ApiPath(id): ApiPath<usize>,
    ApiQuery(q): ApiQuery<FaultQuery>,
) -> ApiResult<StatusCode> {
    if !s.fault_injection {
        return Err(Error::not_found("route", "/v1/engines/{id}/panic").into());
    }
    s.controller.inject_fault(id, q.exit)?;
    Ok(StatusCode::ACCEPTED)
}

/// Push one array as raw little-endian bytes (no JSON, no base64): the fast
/// path for large data. `?dtype=float64&shape=200,300&targets=all`.
#[utoipa::path(put, path = "/v1/namespace/{name}", params(("name" = String, Path, description = "The name to bind.", example = "v"), RawPushQuery),
    request_body(content = Binary, content_type = "application/octet-stream",
                 description = "the items, little-endian, row-major (none for an array of no items)"),
    responses((status = 200, body = EngineIds, description = "the engines that hold the array now"),
              (status = 400, body = ErrorBody, description = "a bad query, or a body that does not fit dtype and shape"),
              (status = 404, body = ErrorBody, description = "no such engine"),
              (status = 413, body = ErrorBody, description = "the body is over the limit"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "an engine failed and was restarted")))]
pub async fn push_raw(
    State(s): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RawPushQuery>,
    req: Request,
) -> ApiResult<Json<EngineIds>> {
    let dtype = Dtype::parse(&q.dtype).ok_or_else(|| Error::BadRequest(format!("unknown dtype {:?}", cut(&q.dtype))))?;
    let shape = match &q.shape {
        None => None,
        Some(text) => Some(
            text.split(',')
                .map(|d| d.trim().parse::<usize>().map_err(|_| Error::BadRequest(format!("shape {:?} is not a list of sizes", cut(text)))))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let limit = s.controller.limits().body_max;
    let targets = targets_query(&q.targets);
    // float64 to remote engines: they fetch the bytes while they arrive here.
    let declared = super::body::content_length(&req).filter(|&n| n <= limit && n % 8 == 0 && n >= crate::remote::staging::STAGE_MIN);
    if let (Dtype::F64, Some(len)) = (dtype, declared) {
        let items = len / 8;
        let shape = shape.clone().unwrap_or_else(|| vec![items]);
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(items) {
            return Err(Error::BadRequest(format!("shape {:?} does not hold {items} items", cut(&format!("{shape:?}")))).into());
        }
        if let Some(push) = s.controller.begin_streamed_push(&targets, &name, shape.clone(), len)? {
            // The controller keeps a copy only for its own engines.
            let value = if push.has_local() {
                let floats = read_f64s(req, limit, |chunk| push.append(chunk.clone())).await?;
                Some(s.controller.raw_value(dtype, Some(shape), RawData::F64(floats))?)
            } else {
                super::body::stream_body(req, len, |chunk| push.append(chunk.clone())).await?;
                None
            };
            let engines = s.controller.finish_streamed_push(push, value).await?;
            s.metrics.pushed(len as u64);
            return Ok(Json(EngineIds { engines }));
        }
    }
    let data = if dtype == Dtype::F64 {
        // The common case: from the network straight into the values.
        RawData::F64(read_f64s(req, limit, |_| {}).await?)
    } else {
        RawData::Bytes(read_bytes(req, limit).await?)
    };
    let pushed = match &data {
        RawData::F64(v) => v.len() * 8,
        RawData::Bytes(b) => b.len(),
    } as u64;
    let value = s.controller.raw_value(dtype, shape, data)?;
    let engines = s.controller.push_value(&targets, &name, value).await?;
    s.metrics.pushed(pushed);
    Ok(Json(EngineIds { engines }))
}

/// Pull one engine's array as raw little-endian bytes; the dtype and shape
/// come in the `x-wasmpar-dtype` and `x-wasmpar-shape` headers.
#[utoipa::path(get, path = "/v1/namespace/{name}", params(("name" = String, Path, description = "The name to read.", example = "v"), RawPullQuery),
    responses((status = 200, body = Binary, content_type = "application/octet-stream", description = "the array's items, little-endian, row-major",
               headers(("x-wasmpar-dtype" = String, description = "numpy's name of the items' type"),
                       ("x-wasmpar-shape" = String, description = "the dimensions, comma-separated"))),
              (status = 400, body = ErrorBody, description = "a bad query, several engines, or a value that is not an array of numbers"),
              (status = 404, body = ErrorBody, description = "no such engine, or the name missing on it"),
              (status = 429, body = ErrorBody, description = "an engine's queue is full; retry"),
              (status = 503, body = ErrorBody, description = "an engine failed and was restarted")))]
pub async fn pull_raw(
    State(s): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RawPullQuery>,
) -> ApiResult<impl IntoResponse> {
    let targets = q.targets.clone().unwrap_or_else(|| "0".into());
    let (dtype, shape, bytes) = s.controller.pull_raw(&Targets::Spec(targets), &name).await?;
    let shape_text = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    s.metrics.pulled(bytes.len() as u64);
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (axum::http::HeaderName::from_static("x-wasmpar-dtype"), dtype.name().to_string()),
            (axum::http::HeaderName::from_static("x-wasmpar-shape"), shape_text),
        ],
        bytes,
    ))
}

/// The request body's length as sent (`wasmpar_bytes_pushed_total`); 0
/// for a body sent without `Content-Length`.
fn body_len(headers: &HeaderMap) -> u64 {
    headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A JSON answer of namespace values, serialized here once so its length
/// counts in `wasmpar_bytes_pulled_total`.
fn pulled_json<T: serde::Serialize>(s: &AppState, answer: &T) -> ApiResult<axum::response::Response> {
    let body = serde_json::to_vec(answer).map_err(|e| Error::Internal(format!("an answer did not serialize: {e}")))?;
    s.metrics.pulled(body.len() as u64);
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// An engine process joins (`wasmpar engine --connect`): a WebSocket that
/// lasts as long as the process is part of the cluster.
pub async fn connect_engine(State(s): State<Arc<AppState>>, ws: axum::extract::ws::WebSocketUpgrade) -> impl IntoResponse {
    let controller = s.controller.clone();
    // A pull of a large array is one large message (and frame).
    ws.max_message_size(s.controller.limits().body_max)
        .max_frame_size(s.controller.limits().body_max)
        .on_upgrade(move |socket| async move { controller.serve_engine_process(socket).await })
}

/// The bytes of an uploaded component, by digest (engine processes fetch
/// each component once).
pub async fn blob(State(s): State<Arc<AppState>>, ApiPath(digest): ApiPath<String>) -> ApiResult<impl IntoResponse> {
    let bytes = s.controller.component_bytes(&digest)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/wasm")], bytes))
}

/// A pushed array's raw little-endian bytes, staged for the engine process
/// the controller named it to (`remote::staging`).
pub async fn staged(State(s): State<Arc<AppState>>, ApiPath(id): ApiPath<String>) -> ApiResult<axum::response::Response> {
    use crate::remote::staging::Staged;
    let octets = (axum::http::header::CONTENT_TYPE, "application/octet-stream");
    Ok(match s.controller.staged(&id)? {
        Staged::Whole(bytes) => ([octets], bytes).into_response(),
        // Streamed as the client's upload arrives; an upload that breaks
        // ends this body with an error, never as a short value.
        Staged::Growing(g) => {
            let length = g.total.to_string();
            ([octets, (axum::http::header::CONTENT_LENGTH, length.as_str())], axum::body::Body::from_stream(g.chunks())).into_response()
        }
    })
}

/// An engine process hands over a pulled array's raw bytes before naming
/// them in its answer (`remote::staging`).
pub async fn stage_upload(State(s): State<Arc<AppState>>, ApiPath(id): ApiPath<String>, req: Request) -> ApiResult<StatusCode> {
    let bytes = read_bytes(req, s.controller.limits().body_max).await?;
    s.controller.staged_upload(&id, bytes)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_bounds_counts_as_submit_does() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(super::super::ApiDoc::openapi()).unwrap_or_default();
        for field in ["chunksize", "retries"] {
            let max = &doc["components"]["schemas"]["TaskSpec"]["properties"][field]["maximum"];
            assert_eq!(max.as_f64(), Some(MAX_COUNT as f64), "{field}: {max}");
        }
    }

    #[test]
    fn any_wait_is_answered() {
        assert_eq!(wait_duration(1e30).ok(), Some(MAX_WAIT));
        assert_eq!(wait_duration(f64::MAX).ok(), Some(MAX_WAIT));
        assert_eq!(wait_duration(0.5).ok(), Some(Duration::from_millis(500)));
        assert!(wait_duration(-1.0).is_err());
        assert!(wait_duration(f64::NAN).is_err());
        assert!(wait_duration(f64::INFINITY).is_err());
    }
}
