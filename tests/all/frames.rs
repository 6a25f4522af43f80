//! Framed task bodies (API.md, "Framed bodies"): the JSON document then raw
//! buffers that array forms name, in and out, over real HTTP; and every
//! broken framing as a clear 4xx.

use serde_json::{json, Value as Json};

use crate::server::TestServer;

const FRAMES: &str = "application/x-wasmpar-frames";

fn framed(doc: &Json, buffers: &[Vec<u8>]) -> Vec<u8> {
    let text = serde_json::to_vec(doc).expect("json");
    let mut out = Vec::new();
    for part in std::iter::once(&text).chain(buffers) {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The frames of a framed answer: the document and its buffers.
fn unframe(body: &[u8]) -> (Json, Vec<Vec<u8>>) {
    let mut parts = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len = u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes")) as usize;
        parts.push(body[at + 8..at + 8 + len].to_vec());
        at += 8 + len;
    }
    let doc = serde_json::from_slice(&parts[0]).expect("the first frame is JSON");
    (doc, parts.split_off(1))
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// POST /v1/tasks with a framed body; `accept` asks for a framed answer.
fn post(s: &TestServer, body: Vec<u8>, accept: &str) -> (u16, String, Vec<u8>) {
    let r = s
        .http
        .post(format!("{}/v1/tasks", s.url))
        .bearer_auth(&s.token)
        .header("content-type", FRAMES)
        .header("accept", accept)
        .body(body)
        .send()
        .expect("post");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let length = r.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let chunked = r.headers().get("transfer-encoding").is_some();
    let answer = r.bytes().expect("answer").to_vec();
    // A framed answer goes out as its chunks, with its length said up front.
    assert_eq!((length, chunked), (Some(answer.len()), false), "the answer's Content-Length");
    (status, ct, answer)
}

fn grid() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..300).map(|i| -2.0 + i as f64 * 0.01).collect();
    let y: Vec<f64> = (0..200).map(|j| -1.0 + j as f64 * 0.01).collect();
    (y.iter().flat_map(|_| x.iter().copied()).collect(), y.iter().flat_map(|&yy| std::iter::repeat_n(yy, x.len())).collect())
}

#[test]
fn framed_mandelbrot_matches_the_json_answer() {
    let s = TestServer::start(2);
    s.upload("mandelbrot", wasmpar::examples::MANDELBROT_WASM);
    let (xs, ys) = grid();
    let json_answer =
        s.ok(json!({"op": "map", "component": "mandelbrot", "function": "mandel", "sequences": [xs, ys], "kwargs": {"max-iters": 80}}));
    let expected: Vec<u32> = json_answer.as_array().expect("list").iter().map(|v| v.as_u64().expect("u32") as u32).collect();
    let doc = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "block": true,
        "sequences": [{"dtype": "float64", "shape": [xs.len()], "buffer": 0}, {"dtype": "float64", "buffer": 1}],
        "kwargs": {"max-iters": 80}, "result_encoding": "array"});
    let body = framed(&doc, &[f64_bytes(&xs), f64_bytes(&ys)]);
    // A framed answer: the result's array as buffer 0.
    let (status, ct, answer) = post(&s, body.clone(), FRAMES);
    assert_eq!((status, ct.as_str()), (200, FRAMES));
    let (view, buffers) = unframe(&answer);
    assert_eq!(view["status"], "done", "{}", view["error"]);
    assert_eq!(view["result"], json!({"dtype": "uint32", "shape": [60_000], "buffer": 0}));
    assert_eq!(u32s(&buffers[0]), expected);
    // The same with the document padded to 8 bytes (as the Python client
    // sends it): the buffers then lie aligned and are read in place.
    let mut padded = doc.to_string().into_bytes();
    padded.resize(padded.len().next_multiple_of(8), b' ');
    let mut aligned = (padded.len() as u64).to_le_bytes().to_vec();
    aligned.extend_from_slice(&padded);
    for b in [f64_bytes(&xs), f64_bytes(&ys)] {
        aligned.extend_from_slice(&(b.len() as u64).to_le_bytes());
        aligned.extend_from_slice(&b);
    }
    assert_ne!(aligned.len(), body.len(), "the unpadded document is not a multiple of 8 long, so both ways are tried");
    let (status, _, answer) = post(&s, aligned, FRAMES);
    assert_eq!(status, 200);
    assert_eq!(u32s(&unframe(&answer).1[0]), expected, "aligned buffers give the same image");
    // The same request answered as JSON when the client does not ask for frames.
    let (status, ct, answer) = post(&s, body, "application/json");
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let v: Json = serde_json::from_slice(&answer).expect("json");
    assert!(v["result"]["data"].is_string(), "{}", v["result"]);
    // apply with whole buffers as arguments, and a buffer in kwargs; the
    // answer of a non-blocking task fetched framed later.
    let (a, b) = (&xs[..1000], &ys[..1000]);
    let doc = json!({"op": "apply", "component": "mandelbrot", "function": "mandel-chunk", "targets": 0, "result_encoding": "array",
        "args": [{"dtype": "float64", "buffer": 1}], "kwargs": {"ys": {"dtype": "float64", "buffer": 0}, "max_iters": 80}});
    let (status, _, answer) = post(&s, framed(&doc, &[f64_bytes(b), f64_bytes(a)]), "application/json");
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let id = serde_json::from_slice::<Json>(&answer).expect("json")["id"].as_str().expect("id").to_string();
    let r = s.http.get(format!("{}/v1/tasks/{id}?wait=30", s.url)).bearer_auth(&s.token).header("accept", FRAMES).send().expect("get");
    let (view, buffers) = unframe(&r.bytes().expect("answer"));
    assert_eq!(view["status"], "done", "{}", view["error"]);
    // apply on one engine answers a list of one result per engine.
    assert_eq!(view["result"], json!([{"dtype": "uint32", "shape": [1000], "buffer": 0}]));
    assert_eq!(u32s(&buffers[0]), expected[..1000]);
}

#[test]
fn broken_framed_bodies_are_clear_errors() {
    let s = TestServer::start(1);
    s.upload("mandelbrot", wasmpar::examples::MANDELBROT_WASM);
    let xs = f64_bytes(&[0.0, 0.5, 1.0]);
    let spec = |seqs: Json| json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "block": true, "sequences": seqs, "kwargs": {"max-iters": 8}});
    let two = spec(json!([{"dtype": "float64", "buffer": 0}, {"dtype": "float64", "buffer": 1}]));
    let whole = framed(&two, &[xs.clone(), xs.clone()]);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (whole[..whole.len() - 3].to_vec(), 400, "frame 2 says 24 bytes but only 21 follow"),
        (Vec::new(), 400, "the first frame must be the JSON document"),
        (framed(&two, std::slice::from_ref(&xs)), 400, "`buffer` 1 names no buffer (the framed body has 1"),
        (framed(&two, &[xs.clone(), xs.clone(), xs.clone()]), 400, "buffer 2 is named by no array form"),
        (framed(&two, &[xs.clone(), xs[..20].to_vec()]), 400, "20 bytes is not a whole number of float64 items"),
        (
            framed(
                &spec(json!([{"dtype": "float64", "shape": [4], "buffer": 0}, {"dtype": "float64", "buffer": 1}])),
                &[xs.clone(), xs.clone()],
            ),
            400,
            "needs 4 items but data holds 3",
        ),
        (b"\x05\x00\x00\x00\x00\x00\x00\x00{nope".to_vec(), 400, "invalid JSON body"),
    ];
    for (body, status, says) in cases {
        let (got, _, answer) = post(&s, body, FRAMES);
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(got, status, "{says}: {text}");
        assert!(text.contains(says), "expected {says:?} in {text}");
    }
    // A buffer inside another value (a list of forms): a type error naming it.
    let nested = json!({"op": "map", "component": "mandelbrot", "function": "mandel-chunk", "block": true,
        "sequences": [[{"dtype": "float64", "buffer": 0}], [{"dtype": "float64", "buffer": 1}]], "kwargs": {"max-iters": 8}});
    let (got, _, answer) = post(&s, framed(&nested, &[xs.clone(), xs.clone()]), FRAMES);
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(got, 422, "{text}");
    assert!(text.contains("naming a buffer inside another value"), "{text}");
    // And the server still answers a good one.
    let (got, _, answer) = post(&s, whole, FRAMES);
    assert_eq!(got, 200, "{}", String::from_utf8_lossy(&answer));
}
