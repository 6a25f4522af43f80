//! Pushes of long array forms over real HTTP, which the server decodes
//! while the body arrives (api/push_stream.rs, strings over 1 MiB): the
//! values pulled back are the ones sent, long strings that are not array
//! data stay strings, and broken forms and bodies answer as small ones do.

use base64::Engine as _;
use serde_json::{json, Value as Json};

use crate::server::TestServer;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn floats(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.25 - 1e6).collect()
}

fn f64_form(xs: &[f64], shape: &[usize]) -> Json {
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    json!({"dtype": "float64", "shape": shape, "data": b64(&bytes)})
}

/// PUT /v1/namespace with `body` as sent; (status, answer).
fn put(s: &TestServer, body: Vec<u8>) -> (u16, Json) {
    s.raw("PUT", "/v1/namespace", Some(body), Some(&s.token.clone()), "application/json")
}

#[test]
fn long_array_forms_arrive_as_sent() {
    let s = TestServer::start(2);
    let xs = floats(400_000); // 3.2 MB of bytes, a 4.3 MB string
    let ints: Vec<i32> = (0..600_000).map(|i| i * 7 - 1_000_000).collect();
    let int_bytes: Vec<u8> = ints.iter().flat_map(|x| x.to_le_bytes()).collect();
    let text = "not base64, but long: ".repeat(100_000);
    let body = json!({"targets": "all", "values": {
        "xs": f64_form(&xs, &[xs.len()]),
        "grid": f64_form(&xs, &[1000, 400]),
        "ints": {"dtype": "int32", "data": b64(&int_bytes)},
        "text": text,
        "b64text": b64(&int_bytes),
        "small": 3,
    }});
    let (status, v) = put(&s, serde_json::to_vec(&body).expect("json"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["engines"], json!([0, 1]));

    for e in 0..2 {
        let r = s.http.get(format!("{}/v1/namespace/xs?targets={e}", s.url)).bearer_auth(&s.token).send().expect("raw pull");
        assert_eq!(r.status().as_u16(), 200);
        let got: Vec<f64> = r.bytes().expect("bytes").chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8"))).collect();
        assert_eq!(got, xs, "engine {e}'s xs");
    }
    let (status, v) = s.pull("grid,ints,text,b64text,small", "1");
    assert_eq!(status, 200, "{v}");
    let got = &v["values"][0];
    assert_eq!(got["grid"].as_array().map(Vec::len), Some(1000), "a 1000 x 400 array");
    assert_eq!(got["grid"][999][399].as_f64(), xs.last().copied());
    let pulled_ints: Vec<i64> = got["ints"].as_array().expect("ints").iter().filter_map(Json::as_i64).collect();
    assert_eq!(pulled_ints, ints.iter().map(|&i| i as i64).collect::<Vec<_>>());
    assert_eq!(got["text"].as_str(), Some(text.as_str()), "a long plain string stays a string");
    assert_eq!(got["b64text"].as_str(), Some(b64(&int_bytes).as_str()), "a long base64 string that is no form's data stays a string");
    assert_eq!(got["small"], 3);
}

#[test]
fn long_broken_forms_and_bodies_answer_as_short_ones() {
    let s = TestServer::start(1);
    let short = floats(10);
    let long = floats(300_000);
    // Each broken the same way, short (read whole) and long (streamed).
    let cases = |xs: &[f64]| {
        let form = f64_form(xs, &[xs.len()]);
        let data = form["data"].as_str().expect("data").to_string();
        vec![
            json!({"values": {"x": f64_form(xs, &[7])}}).to_string(),
            json!({"values": {"x": {"dtype": "float99", "data": data}}}).to_string(),
            json!({"values": {"x": {"dtype": "float64", "data": format!("{}A===", &data[..data.len() - 4])}}}).to_string(),
            json!({"values": {"x": {"dtype": "float64", "data": format!("{}*{}", &data[..40], &data[41..])}}}).to_string(),
            format!(r#"{{"values": {{"x": {{"dtype": "float64", "data": "{data}"}}}}"#),
            format!(r#"{{"values": {{"x": {{"dtype": "float64", "data": "{data}"}}}}, "extra": 1}}"#),
        ]
    };
    for (small, big) in cases(&short).into_iter().zip(cases(&long)) {
        let (s1, v1) = put(&s, small.into_bytes());
        let (s2, v2) = put(&s, big.into_bytes());
        assert!((400..500).contains(&s1), "{s1}: {v1}");
        assert_eq!(s2, s1, "long: {v2}, short: {v1}");
        assert_eq!(v2["error"]["kind"], v1["error"]["kind"], "long: {v2}, short: {v1}");
        // The same words, up to the sizes each names.
        let words = |v: &Json| -> String {
            v["error"]["message"].as_str().unwrap_or_default().chars().filter(|c| !c.is_ascii_digit()).take(60).collect()
        };
        assert_eq!(words(&v2), words(&v1), "long: {v2}, short: {v1}");
    }
    // Nothing half-pushed: the name was never bound.
    let (status, v) = s.pull("x", "0");
    assert_eq!(status, 404, "{v}");
    s.upload_seed();
    s.assert_healthy(1);
}
