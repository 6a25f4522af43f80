//! The page and the event stream over a real socket.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

fn engine(id: usize, completed: u64) -> EngineStatus {
    EngineStatus { id, state: "idle".into(), queued: 0, completed, restarts: 0, libraries: vec!["stats".into()], ..Default::default() }
}

async fn serve(hub: Arc<EventHub>) -> std::net::SocketAddr {
    let app: Router = page_routes().merge(event_routes(hub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Read from `stream` until `needle` has arrived (or fail after 10 s).
async fn read_until(stream: &mut TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 8192];
    while !seen.contains(needle) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no `{needle}` within 10 s; got:\n{seen}"))
            .expect("read");
        assert!(n > 0, "the stream ended before `{needle}`; got:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn page_and_assets_are_served_with_a_strict_policy() {
    let addr = serve(EventHub::new()).await;
    let client = reqwest::Client::new();
    let page = client.get(format!("http://{addr}/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let csp = page.headers().get("content-security-policy").expect("a CSP").to_str().expect("ascii").to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = page.text().await.expect("body");
    assert!(html.contains("/dashboard/app.js") && html.contains("id=\"login-form\""));
    assert!(!html.contains("http://") && !html.contains("https://"), "no asset from another origin");
    for (path, kind) in [("/dashboard/app.js", "text/javascript"), ("/dashboard/app.css", "text/css")] {
        let r = client.get(format!("http://{addr}{path}")).send().await.expect("GET asset");
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().expect("ascii").starts_with(kind), "{path}");
        assert!(!r.text().await.expect("body").is_empty());
    }
}

#[tokio::test]
async fn events_stream_hello_then_what_is_sent() {
    let hub = EventHub::new();
    hub.record_engines(vec![engine(0, 5), engine(1, 5)]);
    let addr = serve(hub.clone()).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").await.expect("request");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"type\":\"hello\"").await;
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("\"libraries\":[\"stats\"]"), "the hello carries the last engine snapshot: {seen}");
    // Wait until the handler has subscribed (it has: the hello came after).
    assert_eq!(hub.listeners(), 1);
    hub.calls_finished(11);
    hub.record_engines(vec![engine(0, 12), engine(1, 9)]);
    read_until(&mut stream, &mut seen, "\"type\":\"engines\"").await;
    read_until(&mut stream, &mut seen, "\"calls\":11").await;
    hub.send(DashboardEvent::TaskSubmitted {
        task: TaskBrief {
            id: "abc123".into(),
            op: "apply".into(),
            component: "mandelbrot".into(),
            function: "render".into(),
            status: "pending".into(),
            done: 0,
            total: 1,
            engines: vec![0],
            submitted: Utc::now(),
            completed: None,
            wall_ms: None,
            error: None,
        },
    });
    read_until(&mut stream, &mut seen, "\"type\":\"task_submitted\"").await;
    hub.send(DashboardEvent::TaskProgress { id: "abc123".into(), done: 1, total: 1 });
    read_until(&mut stream, &mut seen, "{\"type\":\"task_progress\",\"id\":\"abc123\",\"done\":1,\"total\":1}").await;
}

#[test]
fn throughput_counts_the_calls_between_samples() {
    let hub = EventHub::default();
    hub.calls_finished(4);
    hub.record_engines(vec![engine(0, 10), engine(1, 0)]);
    hub.record_engines(vec![engine(0, 20), engine(1, 5)]);
    hub.calls_finished(40_000);
    hub.calls_finished(2);
    hub.record_engines(vec![engine(0, 1), engine(1, 6)]);
    let DashboardEvent::Hello { throughput, engines } = hub.hello() else { panic!("not a hello") };
    assert_eq!(throughput.iter().map(|s| s.calls).collect::<Vec<_>>(), [4, 0, 40_002]);
    assert_eq!(engines.len(), 2);
    assert_eq!(engines[0].completed, 1, "the hello carries the latest snapshot");
}

#[test]
fn dashboard_url_carries_the_token_in_the_fragment() {
    assert_eq!(dashboard_url("http://127.0.0.1:7800/", "t0k"), "http://127.0.0.1:7800/#token=t0k");
}
