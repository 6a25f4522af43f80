//! The OpenAPI document says what the routes take and answer, and the
//! errors the router makes by itself (405, 414, 404, rejections) are the
//! JSON error body like every other. (scripts/test.d/05-schemathesis.sh
//! checks the whole document against a live server; these pin the defects
//! it once found.)

use serde_json::Value;
use utoipa::OpenApi;

use super::*;

fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

#[test]
fn every_path_parameter_is_declared_in_path_and_the_rest_in_query() {
    let doc = document();
    let ops = operations(&doc);
    assert!(ops.len() >= 16, "{} operations", ops.len());
    for (path, method, op) in &ops {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let declared: Vec<&str> = params.iter().filter(|p| p["in"] == "path").filter_map(|p| p["name"].as_str()).collect();
        let in_path: Vec<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
        assert_eq!(declared, in_path, "{method} {path}");
        for p in &params {
            assert!(p["in"] == "path" || p["in"] == "query", "{method} {path}: {p}");
        }
    }
    let upload = &doc["paths"]["/v1/components"]["post"];
    assert_eq!(upload["parameters"][0]["in"], "query");
    assert_eq!(upload["parameters"][0]["name"], "name");
    let gather = &doc["paths"]["/v1/gather"]["get"]["parameters"];
    assert!(gather.as_array().into_iter().flatten().all(|p| p["in"] == "query"), "{gather}");
    assert!(!doc["paths"].as_object().into_iter().flatten().any(|(p, _)| p.contains("panic")), "the fault injection route stays out");
}

#[test]
fn raw_bodies_are_binary_and_any_json_is_any() {
    let doc = document();
    let binary = &doc["components"]["schemas"]["Binary"];
    assert_eq!((binary["type"].as_str(), binary["format"].as_str()), (Some("string"), Some("binary")));
    let upload = &doc["paths"]["/v1/components"]["post"]["requestBody"]["content"];
    assert_eq!(upload["application/wasm"]["schema"]["$ref"], "#/components/schemas/Binary", "{upload}");
    let raw = &doc["paths"]["/v1/namespace/{name}"]["put"]["requestBody"];
    assert_eq!(raw["content"]["application/octet-stream"]["schema"]["$ref"], "#/components/schemas/Binary", "{raw}");
    assert_eq!(raw["required"], false, "no body is an array of no items");
    let schemas = &doc["components"]["schemas"];
    for any in [
        &schemas["TaskView"]["properties"]["result"],
        &schemas["GatherAnswer"]["properties"]["values"],
        &schemas["TaskSpec"]["properties"]["args"]["items"],
    ] {
        assert!(any.get("type").is_none() && any.get("$ref").is_none(), "any JSON, null included: {any}");
    }
}

#[test]
fn every_operation_documents_its_errors_and_the_token() {
    let doc = document();
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (path, method, op) in operations(&doc) {
        let answers = op["responses"].as_object().cloned().unwrap_or_default();
        for (status, answer) in &answers {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
            }
        }
        assert!(answers.contains_key("414"), "{method} {path}");
        if path != "/v1/health" {
            assert!(answers.contains_key("401"), "{method} {path}");
            assert!(op["security"][0].get("bearer").is_some(), "{method} {path}");
        }
        if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) || op.get("requestBody").is_some() {
            assert!(answers.contains_key("400"), "{method} {path} takes input, so it can answer 400");
        }
    }
    for (path, method) in [("/v1/tasks", "post"), ("/v1/namespace", "put"), ("/v1/scatter", "post")] {
        let answers = &doc["paths"][path][method]["responses"];
        for status in ["400", "404", "413", "429"] {
            assert!(answers.get(status).is_some(), "{method} {path} {status}");
        }
    }
}

async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let json = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    assert!(json, "{status}: not JSON");
    let body: Value = resp.json().await.unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (status, text(&body["error"]["kind"]), text(&body["error"]["message"]))
}

#[tokio::test]
async fn errors_the_router_makes_itself_are_the_json_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let config = ServerConfig { engines: 1, connection_file: dir.path().join("cluster.json"), ..Default::default() };
    let server = Server::start(config).await.unwrap_or_else(|e| panic!("start: {e}"));
    let (url, token) = (server.info.url.clone(), server.info.token.clone());
    let client = reqwest::Client::new();
    let send = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap_or_else(|e| panic!("request: {e}")) };

    let resp = send(client.patch(format!("{url}/v1/tasks")).bearer_auth(&token)).await;
    let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (status, kind, message) = error_of(resp).await;
    assert_eq!((status, kind.as_str()), (405, "MethodNotAllowed"), "{message}");
    assert!(allow.contains("POST") && message.contains("POST"), "Allow: {allow}; {message}");

    let long = "a".repeat(MAX_URI_BYTES + 1);
    let (status, kind, _) = error_of(send(client.get(format!("{url}/v1/health?{long}"))).await).await;
    assert_eq!((status, kind.as_str()), (414, "UriTooLong"));
    assert_eq!(send(client.get(format!("{url}/v1/health"))).await.status(), 200, "a short one is served");

    let (status, kind, message) = error_of(send(client.get(format!("{url}/v1/nothing")).bearer_auth(&token)).await).await;
    assert_eq!((status, kind.as_str()), (404, "NotFound"));
    assert!(message.contains("/v1/nothing"), "{message}");

    let (status, kind, _) = error_of(send(client.post(format!("{url}/v1/tasks")).bearer_auth(&token)).await).await;
    assert_eq!((status, kind.as_str()), (400, "BadRequest"), "a missing body");

    let (status, kind, message) = error_of(send(client.get(format!("{url}/v1/tasks/%FF")).bearer_auth(&token)).await).await;
    assert_eq!((status, kind.as_str()), (400, "BadRequest"), "{message}");

    let (status, kind, _) = error_of(send(client.get(format!("{url}/v1/engines")).bearer_auth("wrong")).await).await;
    assert_eq!((status, kind.as_str()), (401, "Unauthorized"));

    // Whole floats where the document says integer.
    let body = serde_json::json!({"op": "apply", "component": "none", "function": "f", "targets": 0.0, "chunksize": 2.0});
    let (status, kind, message) = error_of(send(client.post(format!("{url}/v1/tasks")).bearer_auth(&token).json(&body)).await).await;
    assert_eq!((status, kind.as_str()), (404, "NotFound"), "parsed, then no such component: {message}");

    server.stop();
    server.wait().await.unwrap_or_else(|e| panic!("stop: {e}"));
}
