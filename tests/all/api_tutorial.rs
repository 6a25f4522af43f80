//! Every cell of the tutorial (../shared/seed/ipyparallel-tutorial.rst),
//! done over real HTTP against a real 8-engine server, with the printed
//! output.

use std::sync::OnceLock;

use base64::Engine as _;
use rand::Rng;
use serde_json::{json, Value as Json};

use crate::server::TestServer;

/// One 8-engine cluster shared by the tutorial cells (each uses its own globals).
fn cluster() -> &'static TestServer {
    static CLUSTER: OnceLock<TestServer> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let s = TestServer::start(8);
        s.upload_seed();
        s.upload("mandelbrot", wasmpar::examples::MANDELBROT_WASM);
        s
    })
}

fn range(n: i64) -> Vec<i64> {
    (0..n).collect()
}

fn add3_map(targets: Json) -> Json {
    cluster().ok(json!({"op": "map", "component": "seed", "function": "add3",
                        "sequences": [range(10), range(10), range(10)], "targets": targets}))
}

fn b64_f64(xs: &[f64]) -> String {
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn direct_views_map_on_all_alternate_and_one_engine() {
    let want = json!([0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
    assert_eq!(add3_map(json!("all")), want); // dv.map_sync
    assert_eq!(add3_map(json!("::2")), want); // rc[::2]
    assert_eq!(add3_map(json!(2)), want); // rc[2]
    let (_, v) = cluster().call("GET", "/v1/engines", None);
    assert_eq!(v["engines"].as_array().map(Vec::len), Some(8)); // rc.ids
}

#[test]
fn load_balanced_sum_of_random_rows() {
    let s = cluster();
    let mut rng = rand::thread_rng();
    let rows: Vec<Vec<f64>> = (0..10).map(|_| (0..100_000).map(|_| rng.gen::<f64>()).collect()).collect();
    let sums: Vec<f64> = rows.iter().map(|r| r.iter().sum()).collect();
    let check = |result: &Json| {
        let got: Vec<f64> = result.as_array().expect("list").iter().map(|x| x.as_f64().expect("f64")).collect();
        assert_eq!(got.len(), 10);
        for (g, w) in got.iter().zip(&sums) {
            assert!((g - w).abs() <= 1e-9 * w.abs(), "{g} vs {w}");
            assert!((49_000.0..51_000.0).contains(g), "a sum of 100000 uniforms: {g}");
        }
    };
    // lv.map_sync(lambda x: sum(x), np.random.random((10, 100000))), rows as JSON lists…
    check(&s.ok(json!({"op": "map", "component": "seed", "function": "sum-array", "sequences": [rows], "targets": "balanced"})));
    // …and as one array form, the way a numpy client sends it.
    let flat: Vec<f64> = rows.concat();
    let array = json!({"dtype": "float64", "shape": [10, 100_000], "data": b64_f64(&flat)});
    let t = s.task(
        json!({"op": "map", "component": "seed", "function": "sum-array", "sequences": [array], "targets": "balanced", "chunksize": 1}),
    );
    assert_eq!(t["status"], "done", "{}", t["error"]);
    check(&t["result"]);
    let mut used: Vec<i64> = t["engines"].as_array().expect("engines").iter().map(|e| e.as_i64().expect("id")).collect();
    used.dedup();
    assert!(!used.is_empty());
}

#[test]
fn apply_with_args_and_with_kwargs() {
    let s = cluster();
    let r = s.ok(json!({"op": "apply", "component": "seed", "function": "hypot2", "args": [3, 4], "targets": "1:3"}));
    assert_eq!(r, json!([25, 25]));
    let t = s.task(json!({"op": "apply", "component": "seed", "function": "hypot2", "kwargs": {"x": 3, "y": 4}, "targets": "1:3"}));
    assert_eq!(t["result"], json!([25, 25]));
    assert_eq!(t["engines"], json!([1, 2]));
    // On the balanced view apply runs once and gives the value itself.
    assert_eq!(s.ok(json!({"op": "apply", "component": "seed", "function": "hypot2", "args": [3, 4], "targets": "balanced"})), json!(25));
}

#[test]
fn async_map_then_wait() {
    let s = cluster();
    let (status, t) = s.call(
        "POST",
        "/v1/tasks",
        Some(&json!({"op": "map", "component": "seed", "function": "add3",
        "sequences": [range(10), range(10), range(10)], "block": false})),
    );
    assert_eq!(status, 202);
    assert!(["pending", "running", "done"].contains(&t["status"].as_str().unwrap_or("")), "{t}");
    assert_eq!(t["progress"]["total"], 10);
    let id = t["id"].as_str().expect("id");
    let (status, t) = s.call("GET", &format!("/v1/tasks/{id}?wait=10"), None);
    assert_eq!(status, 200);
    assert_eq!(t["status"], "done"); // res.done()
    assert_eq!(t["progress"], json!({"done": 10, "total": 10}));
    assert_eq!(t["result"], json!([0, 3, 6, 9, 12, 15, 18, 21, 24, 27])); // res.get()
    assert!(t["timing"]["wall_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(t["timing"]["completed"].as_str().is_some());
    // Finished tasks stay available.
    assert_eq!(s.call("GET", &format!("/v1/tasks/{id}"), None).1["result"], t["result"]);
}

#[test]
fn remote_rand_gives_one_array_per_engine() {
    let r = cluster().ok(json!({"op": "apply", "component": "seed", "function": "rand", "args": [4]}));
    let arrays = r.as_array().expect("list");
    assert_eq!(arrays.len(), 8);
    for a in arrays {
        let xs = a.as_array().expect("array");
        assert_eq!(xs.len(), 4);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(&x.as_f64().expect("f64"))));
    }
    assert!(arrays.windows(2).any(|w| w[0] != w[1]), "independent random streams");
}

#[test]
fn parallel_echo_sum_and_elementwise_add() {
    let s = cluster();
    let r = s.ok(json!({"op": "parallel", "component": "seed", "function": "echo-chunk", "sequences": [range(15)]}));
    assert_eq!(r, json!(range(15)));
    let t = s.task(json!({"op": "parallel", "component": "seed", "function": "sum-chunk", "sequences": [range(15)]}));
    assert_eq!(t["result"], json!([1, 5, 9, 13, 17, 21, 25, 14]));
    assert_eq!(t["engines"], json!([0, 1, 2, 3, 4, 5, 6, 7]));
    let r = s.ok(json!({"op": "parallel", "component": "seed", "function": "add-chunks", "sequences": [range(10), range(10)]}));
    assert_eq!(r, json!([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]));
    // The same with numpy-style array forms in and out.
    let ints: Vec<u8> = (0..10i64).flat_map(|x| x.to_le_bytes()).collect();
    let a = json!({"dtype": "int64", "shape": [10], "data": base64::engine::general_purpose::STANDARD.encode(&ints)});
    let r = s.ok(json!({"op": "parallel", "component": "seed", "function": "add-chunks", "sequences": [a, a], "result_encoding": "array"}));
    assert_eq!(r["dtype"], "int64");
    assert_eq!(r["shape"], json!([10]));
    let bytes = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().expect("data")).expect("base64");
    let got: Vec<i64> = bytes.chunks(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    assert_eq!(got, (0..10).map(|x| 2 * x).collect::<Vec<i64>>());
}

fn mandel(x: f64, y: f64, max_iters: u32) -> u32 {
    let (mut zr, mut zi) = (0.0f64, 0.0f64);
    for i in 0..max_iters {
        let (nr, ni) = (zr * zr - zi * zi + x, 2.0 * zr * zi + y);
        zr = nr;
        zi = ni;
        if zr * zr + zi * zi >= 4.0 {
            return i;
        }
    }
    max_iters
}

fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let n = ((stop - start) / step).ceil() as usize;
    (0..n).map(|i| start + i as f64 * step).collect()
}

#[test]
fn mandelbrot_in_parallel_equals_serial() {
    let s = cluster();
    let (x, y) = (arange(-2.0, 1.0, 0.01), arange(-1.0, 1.0, 0.01));
    let xs: Vec<f64> = y.iter().flat_map(|_| x.iter().copied()).collect();
    let ys: Vec<f64> = y.iter().flat_map(|&yy| std::iter::repeat_n(yy, x.len())).collect();
    let serial: Vec<u32> = xs.iter().zip(&ys).map(|(&a, &b)| mandel(a, b, 80)).collect();
    assert_eq!(serial.len(), 60_000);
    let as_u32 = |r: &Json| r.as_array().expect("list").iter().map(|v| v.as_u64().expect("u32") as u32).collect::<Vec<u32>>();
    // Elementwise, max_iters as a constant keyword argument.
    let r = s.ok(json!({"op": "map", "component": "mandelbrot", "function": "mandel", "sequences": [xs, ys], "kwargs": {"max-iters": 80}}));
    assert_eq!(as_u32(&r), serial);
    // @parallel: one chunk per engine through mandel-chunk (snake_case kwarg accepted).
    let r = s.ok(json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "sequences": [xs, ys], "kwargs": {"max_iters": 80}}));
    assert_eq!(as_u32(&r), serial);
    // The same with array forms in (the typed path: no `Val` per element,
    // engine/typed.rs), the result as JSON numbers and as an array form.
    let form = |v: &[f64]| {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        json!({"dtype": "float64", "shape": [v.len()], "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
    };
    let spec = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "sequences": [form(&xs), form(&ys)], "kwargs": {"max-iters": 80}});
    assert_eq!(as_u32(&s.ok(spec.clone())), serial);
    let mut as_array = spec;
    as_array["result_encoding"] = json!("array");
    let r = s.ok(as_array);
    assert_eq!((&r["dtype"], &r["shape"]), (&json!("uint32"), &json!([60_000])), "{}", r["dtype"]);
    let bytes = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().expect("data")).expect("base64");
    assert_eq!(bytes.chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<u32>>(), serial);
    // Rows of a 2-D array, one call each (typed), beside the same as JSON lists (`Val`s).
    let rows: Vec<i64> = (0..12).map(|i| i * 1_000_000_007 - 5).collect();
    let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
    let grid = json!({"dtype": "int64", "shape": [3, 4], "data": base64::engine::general_purpose::STANDARD.encode(bytes)});
    let typed = s.ok(json!({"op": "map", "component": "seed", "function": "echo-chunk", "sequences": [grid]}));
    let lists: Vec<Vec<i64>> = rows.chunks(4).map(<[i64]>::to_vec).collect();
    let plain = s.ok(json!({"op": "map", "component": "seed", "function": "echo-chunk", "sequences": [lists]}));
    assert_eq!(typed, plain);
    assert_eq!(typed, json!(lists));
    // The image, through display.
    let t = s.task(json!({"op": "apply", "component": "mandelbrot", "function": "render", "args": [120, 80, 40], "targets": 0}));
    let png = base64::engine::general_purpose::STANDARD.decode(t["outputs"][0]["images"][0].as_str().expect("an image")).expect("base64");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(t["result"], json!([png.len()]));
}

#[test]
fn push_pull_and_the_dictionary_interface() {
    let s = cluster();
    let (status, v) = s.call("PUT", "/v1/namespace", Some(&json!({"values": {"a": 3, "b": 2}})));
    assert_eq!(status, 200);
    assert_eq!(v["engines"], json!([0, 1, 2, 3, 4, 5, 6, 7]));
    let r = s.ok(json!({"op": "map", "component": "seed", "function": "affine", "sequences": [range(5)]}));
    assert_eq!(r, json!([2, 5, 8, 11, 14]));
    let (_, v) = s.pull("a,b", "all");
    assert_eq!(v["values"], Json::Array(vec![json!({"a": 3, "b": 2}); 8])); // [[3, 2], …]
    s.push(json!({"c": 5}), json!("all")); // dv['c'] = 5
    let (_, v) = s.pull("a", "all");
    assert_eq!(v["values"], Json::Array(vec![json!({"a": 3}); 8]));
    let (_, v) = s.pull("c", "all");
    assert_eq!(v["values"], Json::Array(vec![json!({"c": 5}); 8]));
    // A `$ref` argument reads the engine's own value.
    let r = s.ok(json!({"op": "apply", "component": "seed", "function": "hypot2", "args": [{"$ref": "a"}, 4], "targets": "0,5"}));
    assert_eq!(r, json!([25, 25]));
    let (status, v) = s.pull("zzz", "all");
    assert_eq!(status, 404);
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("name `zzz` not found on engine 0"));
}

#[test]
fn scatter_and_gather() {
    let s = cluster();
    let mut rng = rand::thread_rng();
    let ints: Vec<i64> = (0..10).map(|_| rng.gen_range(0..10)).collect();
    let (status, _) = s.call("POST", "/v1/scatter", Some(&json!({"name": "sa", "values": ints})));
    assert_eq!(status, 200);
    let (_, v) = s.pull("sa", "all");
    let sizes: Vec<usize> = v["values"].as_array().expect("values").iter().map(|m| m["sa"].as_array().map_or(0, Vec::len)).collect();
    assert_eq!(sizes, vec![2, 2, 1, 1, 1, 1, 1, 1]);
    let (_, g) = s.call("GET", "/v1/gather?name=sa", None);
    assert_eq!(g["values"], json!(ints));
    // scatter range(24), %px y = [x**2 for x in xs], gather y.
    s.call("POST", "/v1/scatter", Some(&json!({"name": "xs", "values": range(24)})));
    s.ok(json!({"op": "apply", "component": "seed", "function": "squares"}));
    let (_, g) = s.call("GET", "/v1/gather?name=y", None);
    assert_eq!(g["values"], json!((0..24).map(|x| x * x).collect::<Vec<i64>>()));
    // Arrays scatter along their first axis and gather back bit-exactly.
    let xs: Vec<f64> = (0..12).map(|i| i as f64 * 0.1 - 0.35).collect();
    let a = json!({"dtype": "float64", "shape": [6, 2], "data": b64_f64(&xs)});
    s.call("POST", "/v1/scatter", Some(&json!({"name": "arr", "values": a, "targets": "0:3"})));
    let (_, g) = s.call("GET", "/v1/gather?name=arr&targets=0:3&encoding=array", None);
    assert_eq!(g["values"], a);
}

#[test]
fn per_engine_stdout_is_captured() {
    let t = cluster().task(json!({"op": "apply", "component": "seed", "function": "greet", "args": ["world"], "targets": "::4"}));
    assert_eq!(t["result"], json!(["hello, world", "hello, world"]));
    let outs = t["outputs"].as_array().expect("outputs");
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[0]["engine"], 0);
    assert_eq!(outs[1]["engine"], 4);
    assert!(outs.iter().all(|o| o["stdout"] == "hello, world\n"));
}

#[test]
fn arrays_round_trip_bit_exactly() {
    let s = cluster();
    let xs = [-0.0, 1e-300, f64::MAX, f64::MIN_POSITIVE, 0.1, -2.5e17];
    let a = json!({"dtype": "float64", "shape": [2, 3], "data": b64_f64(&xs)});
    s.push(json!({"bits": a}), json!("0:2"));
    let (_, v) = s.call("GET", "/v1/namespace?names=bits&targets=0:2&encoding=array", None);
    assert_eq!(v["values"][0]["bits"], a);
    assert_eq!(v["values"][1]["bits"], a);
    let (_, v) = s.call("GET", "/v1/namespace?names=bits&targets=0", None);
    assert_eq!(v["values"][0]["bits"], json!([[-0.0, 1e-300, f64::MAX], [f64::MIN_POSITIVE, 0.1, -2.5e17]]));
    // The binary route: raw little-endian bytes in and out, no JSON.
    let raw: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    let resp = s
        .http
        .put(format!("{}/v1/namespace/rawbits?dtype=float64&shape=3,2&targets=0:2", s.url))
        .bearer_auth(&s.token)
        .header("content-type", "application/octet-stream")
        .body(raw.clone())
        .send()
        .expect("put");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = s.http.get(format!("{}/v1/namespace/rawbits?targets=1", s.url)).bearer_auth(&s.token).send().expect("get");
    assert_eq!(resp.headers()["x-wasmpar-dtype"], "float64");
    assert_eq!(resp.headers()["x-wasmpar-shape"], "3,2");
    assert_eq!(resp.bytes().expect("bytes").to_vec(), raw);
    let (_, v) = s.call("GET", "/v1/namespace?names=rawbits&targets=0", None);
    assert_eq!(v["values"][0]["rawbits"], json!([[-0.0, 1e-300], [f64::MAX, f64::MIN_POSITIVE], [0.1, -2.5e17]]));
    let resp = s
        .http
        .put(format!("{}/v1/namespace/rawbits?dtype=float64&shape=4,2", s.url))
        .bearer_auth(&s.token)
        .body(raw.clone())
        .send()
        .expect("put");
    assert_eq!(resp.status().as_u16(), 400, "a shape that does not fit is refused");
    // A map's number results as one array form.
    let r = s.ok(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [range(5)], "result_encoding": "array"}));
    assert_eq!(r["dtype"], "int64");
    assert_eq!(r["shape"], json!([5]));
}

#[test]
fn openapi_document_is_served() {
    let s = cluster();
    let (status, v) = s.raw("GET", "/v1/openapi.json", None, None, "application/json");
    assert_eq!(status, 200);
    let paths = v["paths"].as_object().expect("paths");
    for p in ["/v1/tasks", "/v1/tasks/{id}", "/v1/namespace", "/v1/scatter", "/v1/gather", "/v1/components", "/v1/install", "/v1/engines"] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    assert!(v["components"]["schemas"]["TaskSpec"].is_object());
}

#[test]
fn components_list_get_and_delete() {
    let s = TestServer::start(1);
    let up = s.upload("seed", wasmpar::examples::SEED_WASM);
    assert_eq!(up["digest"].as_str().map(str::len), Some(64));
    let add3 = up["exports"].as_array().expect("exports").iter().find(|f| f["name"] == "add3").cloned().expect("add3");
    assert_eq!(add3["params"], json!([{"name": "x", "type": "s64"}, {"name": "y", "type": "s64"}, {"name": "z", "type": "s64"}]));
    assert_eq!(add3["result"], "s64");
    assert!(up["imports"].as_array().expect("imports").contains(&json!("wasmpar:engine/namespace@0.1.0")));
    let (_, list) = s.call("GET", "/v1/components", None);
    assert_eq!(list["components"][0]["name"], "seed");
    assert_eq!(s.call("GET", "/v1/components/seed", None).1["digest"], up["digest"]);
    assert_eq!(s.call("DELETE", "/v1/components/seed", None).0, 204);
    assert_eq!(s.call("GET", "/v1/components/seed", None).0, 404);
    // Uploaded again, it is compiled from the cache and works.
    s.upload("seed", wasmpar::examples::SEED_WASM);
    assert_eq!(s.ok(json!({"op": "apply", "component": "seed", "function": "identity", "args": [5]})), json!([5]));
}
