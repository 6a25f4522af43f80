//! TLS for a controller beyond loopback (issue 11, item 4), with real
//! processes of the real binary over real sockets: a controller with `--tls`
//! (on 127.0.0.1, which is enough to exercise the handshake and the pin) is
//! used by the CLI and by an engine process through the fingerprint in the
//! connection file; a wrong fingerprint is refused by both with a clear
//! error; plain HTTP to the TLS port and an unpinned client get nothing; a
//! non-loopback address without TLS or `--insecure` refuses to start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

const BIN: &str = env!("CARGO_BIN_EXE_wasmpar");

/// A TLS controller with no engines of its own, run by the CLI; it and its
/// engine processes are stopped when dropped (also after a failed assert).
struct TlsCluster {
    dir: PathBuf,
    engines: Vec<Child>,
}

impl TlsCluster {
    fn start(tls_args: &[&str]) -> TlsCluster {
        let c = TlsCluster { dir: temp_dir(), engines: Vec::new() };
        let out = c.cli(&c.conn(), &[&["start", "-n", "0", "--daemon", "--cache-dir", c.path("cache").as_str()], tls_args].concat());
        assert!(out.status.success(), "start: {}", stderr(&out));
        c
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("utf-8").to_string()
    }

    fn conn(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }

    fn info(&self) -> wasmpar::api::ConnectionInfo {
        wasmpar::api::connection::read(&self.conn()).expect("connection file")
    }

    fn cli(&self, conn: &Path, args: &[&str]) -> Output {
        Command::new(BIN).args(args).arg("--connection-file").arg(conn).env_remove("WASMPAR_TOKEN").output().expect("run wasmpar")
    }

    fn engine(&mut self, conn: &Path, log: &str) -> &mut Child {
        let log = std::fs::File::create(self.dir.join(log)).expect("log");
        let child = Command::new(BIN)
            .args(["engine", "-n", "1", "--grace", "5", "--cache-dir", self.path("engine-cache").as_str(), "--connection-file"])
            .arg(conn)
            .env_remove("WASMPAR_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("engine process");
        self.engines.push(child);
        self.engines.last_mut().expect("just pushed")
    }

    /// A copy of the connection file whose fingerprint is another one.
    fn wrong_connection_file(&self) -> PathBuf {
        let mut info = self.info();
        info.tls_fingerprint = Some(format!("sha256:{}", "0".repeat(64)));
        let wrong = self.dir.join("wrong.json");
        wasmpar::api::connection::write(&wrong, &info).expect("write");
        wrong
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = self.cli(&self.conn(), &["stop"]);
        for c in &mut self.engines {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("wasmpar-tls-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn the_cli_and_an_engine_process_work_through_a_self_signed_controller() {
    let mut c = TlsCluster::start(&["--tls"]);
    let info = c.info();
    assert!(info.url.starts_with("https://127.0.0.1:"), "{}", info.url);
    let fp = info.tls_fingerprint.clone().expect("a fingerprint in the connection file");
    assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64, "{fp}");
    // The certificate kept beside the connection file is the one pinned; its key is private.
    let pem = std::fs::read(c.dir.join("cluster.crt")).expect("certificate beside the connection file");
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).map(|d: rustls::pki_types::CertificateDer| d.to_vec()).expect("pem");
    assert_eq!(wasmpar::api::tls::fingerprint(&der), fp);
    assert_eq!(mode(&c.dir.join("cluster.key")), 0o600, "key mode");

    let conn = c.conn();
    c.engine(&conn, "engine.log");
    let out = c.cli(&conn, &["engines", "--wait", "1", "--timeout", "60"]);
    assert!(out.status.success(), "engines --wait over TLS: {}\nengine log: {}", stderr(&out), engine_log(&c.dir, "engine.log"));
    // A real call: the CLI uploads over TLS, the engine fetches the bytes over TLS and runs them.
    let out = c.cli(&conn, &["upload", wasmpar::examples::SEED_WASM, "--name", "seed"]);
    assert!(out.status.success(), "upload: {}", stderr(&out));
    let out = c.cli(&conn, &["map", "seed/add3", "range(5)", "range(5)", "range(5)"]);
    assert!(out.status.success(), "map: {}\nengine log: {}", stderr(&out), engine_log(&c.dir, "engine.log"));
    assert_eq!(stdout(&out).trim(), "[0,3,6,9,12]");
}

#[test]
fn a_wrong_fingerprint_is_refused_by_the_cli_and_by_an_engine() {
    let mut c = TlsCluster::start(&["--tls"]);
    let wrong = c.wrong_connection_file();

    let out = c.cli(&wrong, &["engines"]);
    assert!(!out.status.success(), "the CLI trusted a certificate that is not the pinned one: {}", stdout(&out));
    let msg = stderr(&out);
    assert!(msg.contains("does not match the pinned fingerprint") && msg.contains("sha256:0000"), "{msg}");

    // The engine process exits at once (a wrong pin is not retried) with the reason.
    let started = Instant::now();
    let engine = c.engine(&wrong, "wrong-engine.log");
    let status = loop {
        if let Some(status) = engine.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the engine kept trying a certificate that is not the pinned one");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let log = engine_log(&c.dir, "wrong-engine.log");
    assert!(log.contains("does not match the pinned fingerprint"), "{log}");
    // And it never joined.
    let out = c.cli(&c.conn(), &["--json", "engines"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Json = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["engines"].as_array().map(Vec::len), Some(0), "{v}");
}

#[test]
fn plain_http_and_an_unpinned_client_get_nothing_from_the_tls_port() {
    let c = TlsCluster::start(&["--tls"]);
    let info = c.info();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let plain = info.url.replacen("https://", "http://", 1);
    let r = http.get(format!("{plain}/v1/health")).send();
    assert!(r.is_err(), "plain HTTP to the TLS port was answered: {:?}", r.map(|r| r.status()));
    // Normal verification does not trust a self-signed certificate.
    let r = http.get(format!("{}/v1/health", info.url)).send();
    assert!(r.is_err(), "an unpinned client trusted the self-signed certificate");
    // The pinned client does, and the server still needs the token.
    let client = wasmpar::client::Client::from_info(&info);
    assert!(client.health().is_ok());
    let anonymous = wasmpar::client::Client::pinned(&info.url, "not-the-token", info.tls_fingerprint.as_deref());
    let err = anonymous.get::<Json>("/v1/engines").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("token"), "{err}");
}

#[test]
fn a_certificate_of_ones_own_is_served_and_pinned() {
    let dir = temp_dir();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    std::fs::write(dir.join("own.crt"), made.cert.pem()).expect("write");
    std::fs::write(dir.join("own.key"), made.key_pair.serialize_pem()).expect("write");
    let (cert, key) = (dir.join("own.crt"), dir.join("own.key"));
    let c = TlsCluster::start(&["--tls-cert", cert.to_str().expect("utf-8"), "--tls-key", key.to_str().expect("utf-8")]);
    let info = c.info();
    assert_eq!(info.tls_fingerprint.as_deref(), Some(wasmpar::api::tls::fingerprint(made.cert.der()).as_str()));
    let out = c.cli(&c.conn(), &["engines"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A key that is not the certificate's is refused at start.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    std::fs::write(dir.join("other.key"), other.key_pair.serialize_pem()).expect("write");
    let out = Command::new(BIN)
        .args(["start", "-n", "0", "--tls-cert", cert.to_str().expect("utf-8"), "--tls-key"])
        .arg(dir.join("other.key"))
        .arg("--connection-file")
        .arg(dir.join("mismatch.json"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("do not fit"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn beyond_loopback_without_tls_or_insecure_refuses_to_start() {
    let dir = temp_dir();
    let conn = dir.join("cluster.json");
    let out = Command::new(BIN)
        .args(["start", "-n", "0", "--ip", "0.0.0.0", "--connection-file"])
        .arg(&conn)
        .env_remove("WASMPAR_TOKEN")
        .output()
        .expect("run");
    assert!(!out.status.success(), "started on 0.0.0.0 without TLS");
    let msg = stderr(&out);
    assert!(msg.contains("refusing to listen on 0.0.0.0 without TLS") && msg.contains("--insecure"), "{msg}");
    assert!(!conn.exists(), "no connection file for a server that did not start");
    let _ = std::fs::remove_dir_all(&dir);
}

fn engine_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| format!("(no log: {e})"))
}
