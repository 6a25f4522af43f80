//! `wasmpar start` (foreground or `--daemon`) and `wasmpar stop`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use super::output::Printer;
use super::{client, connection_path, Cli};
use crate::api::{Server, ServerConfig};
use crate::runtime::Limits;

#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// Number of engines (default: the number of cores). Only `-n`: `--engines`
    /// names the launcher (`--engines slurm -n 8`).
    #[arg(short = 'n')]
    pub engines: Option<usize>,
    /// Port to listen on; 0 picks a free one (the connection file tells which).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on. Anything but loopback exposes the cluster to the
    /// network, and needs --tls, --tls-cert/--tls-key or --insecure.
    #[arg(long, visible_alias = "ip", default_value = "127.0.0.1")]
    pub listen: IpAddr,
    /// Serve HTTPS with a self-signed certificate made once and kept beside the
    /// connection file (.crt, .key mode 0600); engines and the CLI pin its
    /// fingerprint, which the connection file carries.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback anyway (logged at warn): the token and
    /// every value cross the network in clear text.
    #[arg(long)]
    pub insecure: bool,
    /// Run in the background; return once every engine is ready.
    #[arg(long)]
    pub daemon: bool,
    /// Per-call deadline in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub call_timeout: f64,
    /// Memory cap per engine, MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mib: usize,
    /// Wasm stack per call, KiB.
    #[arg(long, default_value_t = 1024)]
    pub stack_kib: usize,
    /// Fuel per call (instructions, roughly); off by default.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Captured stdout/stderr per call and stream, KiB.
    #[arg(long, default_value_t = 1024)]
    pub output_kib: usize,
    /// Largest component upload, MiB.
    #[arg(long, default_value_t = 64)]
    pub upload_max_mib: usize,
    /// Largest request body, MiB.
    #[arg(long, default_value_t = 512)]
    pub body_max_mib: usize,
    /// Jobs queued per engine before new work gets 429.
    #[arg(long, default_value_t = 100_000)]
    pub queue_max: usize,
    /// Longest map/parallel sequence accepted in one task.
    #[arg(long, default_value_t = 50_000_000)]
    pub max_sequence: usize,
    /// Finished tasks kept for later GETs (each at least --tasks-min-age-s).
    #[arg(long, default_value_t = 10_000)]
    pub tasks_kept: usize,
    /// Seconds a finished task is kept at least (with an SQLite store at
    /// most 2: the store answers it from then on).
    #[arg(long, default_value_t = 3600)]
    pub tasks_min_age_s: u64,
    /// MiB of results finished tasks may hold in all (oldest evicted first).
    #[arg(long, default_value_t = 512)]
    pub tasks_kept_mib: usize,
    /// Where compiled components are cached.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// The Python runner the execute op (`px`, `%%px`) uploads on first use
    /// (default: $WASMPAR_PYTHON_RUNNER, else target/guests/other/python_runner.wasm of this build).
    #[arg(long, value_name = "PATH")]
    pub python_runner: Option<PathBuf>,
    /// Log file for --daemon (default: beside the connection file).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Expose POST /v1/engines/{id}/panic (for fault-injection tests only).
    #[arg(long, hide = true)]
    pub enable_fault_injection: bool,
    /// Engines started by a cluster system instead of in this process.
    #[command(flatten)]
    pub launch: super::launch::LaunchArgs,
    /// The task store: an SQLite file, or `none` to keep tasks in memory only
    /// (default: tasks.sqlite beside the connection file, ~/.wasmpar/tasks.sqlite).
    #[arg(long, value_name = "PATH|none")]
    pub db: Option<String>,
    /// Finished tasks the store keeps at most (0: no bound).
    #[arg(long, default_value_t = 100_000)]
    pub retain_tasks: u64,
    /// Days a finished task stays in the store at most (0: no bound).
    #[arg(long, default_value_t = 30.0)]
    pub retain_days: f64,
    /// MiB of task records the store keeps at most (0: no bound).
    #[arg(long, default_value_t = 1024)]
    pub retain_mib: u64,
}

impl StartArgs {
    pub fn limits(&self) -> Result<Limits> {
        if !(self.call_timeout.is_finite() && self.call_timeout > 0.0) {
            bail!("--call-timeout must be a positive number of seconds");
        }
        let defaults = Limits::default();
        Ok(Limits {
            call_timeout: Duration::from_secs_f64(self.call_timeout),
            memory_per_engine: self.memory_mib << 20,
            max_wasm_stack: self.stack_kib << 10,
            fuel: self.fuel,
            output_cap: self.output_kib << 10,
            upload_max: self.upload_max_mib << 20,
            body_max: self.body_max_mib << 20,
            queue_max: self.queue_max,
            max_sequence_len: self.max_sequence,
            tasks_kept: self.tasks_kept,
            tasks_min_age: Duration::from_secs(self.tasks_min_age_s),
            tasks_kept_bytes: self.tasks_kept_mib << 20,
            cache_dir: self.cache_dir.clone().or(defaults.cache_dir.clone()),
            python_runner: self.python_runner.clone(),
            ..defaults
        })
    }

    /// Where the task store lives: `--db`, or `tasks.sqlite` beside the
    /// connection file (so two clusters never share a store by default).
    pub fn db(&self, connection_file: &std::path::Path) -> Result<crate::store::StoreLocation> {
        let location = crate::store::StoreLocation::from_flag(self.db.as_deref())?;
        if self.db.is_some() {
            return Ok(location);
        }
        let name = match connection_file.file_name().and_then(|n| n.to_str()) {
            Some("cluster.json") | None => "tasks.sqlite".to_string(),
            Some(other) => format!("{}.tasks.sqlite", other.strip_suffix(".json").unwrap_or(other)),
        };
        Ok(crate::store::StoreLocation::Sqlite(connection_file.with_file_name(name)))
    }

    pub fn retention(&self) -> Result<crate::store::Retention> {
        if !(self.retain_days.is_finite() && (0.0..=1e6).contains(&self.retain_days)) {
            bail!("--retain-days must be a number of days between 0 (no bound) and 1000000");
        }
        let bound = |n: u64| (n > 0).then_some(n);
        Ok(crate::store::Retention {
            max_tasks: bound(self.retain_tasks),
            max_age: (self.retain_days > 0.0).then(|| Duration::from_secs_f64(self.retain_days * 86_400.0)),
            max_bytes: bound(self.retain_mib).map(|m| m.saturating_mul(1 << 20)),
            ..Default::default()
        })
    }
}

pub fn start(cli: &Cli, a: &StartArgs, p: &Printer) -> Result<ExitCode> {
    let connection_file = connection_path(cli);
    if a.daemon {
        return start_daemon(cli, a, p, connection_file);
    }
    let launcher = a.launch.launcher()?;
    let wanted = a.engines.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let config = ServerConfig {
        // With a launcher the controller has no engines of its own.
        engines: if launcher.is_some() { 0 } else { wanted },
        listen: a.listen,
        port: a.port,
        connection_file: connection_file.clone(),
        limits: a.limits()?,
        fault_injection: a.enable_fault_injection,
        tls: match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => Some(crate::api::tls::TlsSource::Files { cert: cert.clone(), key: key.clone() }),
            _ => a.tls.then_some(crate::api::tls::TlsSource::SelfSigned),
        },
        insecure: a.insecure,
        db: a.db(&connection_file)?,
        retention: a.retention()?,
    };
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let started = Instant::now();
        let server = Server::start(config).await?;
        if p.json {
            p.print_json(&json!({"url": server.info.url, "engines": server.info.engines, "pid": server.info.pid,
                                  "connection_file": connection_file, "ready_ms": started.elapsed().as_secs_f64() * 1e3}));
        } else {
            println!(
                "wasmpar: {} engines ready at {} in {:.0} ms (connection file {})",
                server.info.engines,
                server.info.url,
                started.elapsed().as_secs_f64() * 1e3,
                connection_file.display()
            );
        }
        let state = server.state.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                state.shutdown.notify_one();
            }
        });
        #[cfg(unix)]
        {
            let state = server.state.clone();
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                tokio::spawn(async move {
                    term.recv().await;
                    state.shutdown.notify_one();
                });
            }
        }
        let mut launched = match &launcher {
            Some(l) => {
                let handle = super::launch::launch(l, &a.launch, &server.info.url, &server.info.token, &connection_file, wanted)?;
                if !p.json {
                    println!(
                        "wasmpar: {wanted} engines launched with {} ({:?}); `wasmpar engines --wait {wanted}` waits for them",
                        l.name(),
                        handle.record()
                    );
                }
                Some(handle)
            }
            None => None,
        };
        server.wait().await?;
        if let Some(h) = launched.as_mut() {
            if let Err(e) = h.stop() {
                eprintln!("wasmpar: stopping the launched engines failed: {e}");
            }
            let _ = std::fs::remove_file(super::launch::record_path(&connection_file));
        }
        if !p.json {
            println!("wasmpar: stopped");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WASMPAR_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Re-run `start` in the background and wait until its engines are ready:
/// the connection file (written only when all engines are up) names the
/// child's pid and its health answers.
fn start_daemon(cli: &Cli, a: &StartArgs, p: &Printer, connection_file: PathBuf) -> Result<ExitCode> {
    let started = Instant::now();
    // The file stays: a restarted controller keeps its token (engine
    // processes reconnect with it); readiness is the file naming our child.
    let log = a.log_file.clone().unwrap_or_else(|| connection_file.with_extension("log"));
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log_out = std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let log_err = log_out.try_clone()?;
    // The same command line minus --daemon; the connection file is passed
    // explicitly (once), whichever way this process found it.
    let mut args = Vec::new();
    let mut skip_value = false;
    for arg in std::env::args().skip(1) {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg == "--connection-file" {
            skip_value = true;
        } else if arg != "--daemon" && !arg.starts_with("--connection-file=") {
            args.push(arg);
        }
    }
    let mut cmd = std::process::Command::new(std::env::current_exe().context("cannot find this program")?);
    cmd.args(&args).arg("--connection-file").arg(&connection_file).stdin(std::process::Stdio::null()).stdout(log_out).stderr(log_err);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().context("cannot start the background server")?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "the server exited ({status}) before it was ready:\n{}",
                tail.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if let Ok(info) = crate::api::connection::read(&connection_file) {
            if info.pid == pid && crate::client::Client::from_info(&info).health().is_ok() {
                if p.json {
                    p.print_json(&json!({"url": info.url, "engines": info.engines, "pid": pid, "connection_file": connection_file,
                                          "log_file": log, "ready_ms": started.elapsed().as_secs_f64() * 1e3}));
                } else {
                    println!(
                        "wasmpar: {} engines ready at {} (pid {pid}, {:.0} ms; log {}; stop with `wasmpar stop`)",
                        info.engines,
                        info.url,
                        started.elapsed().as_secs_f64() * 1e3,
                        log.display()
                    );
                }
                let _ = cli;
                return Ok(ExitCode::SUCCESS);
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the server was not ready within 120 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn stop(cli: &Cli, p: &Printer) -> Result<ExitCode> {
    let path = connection_path(cli);
    // Engines a dead controller launched (Slurm jobs, process groups) are
    // stopped from the record it left, even if the controller is gone.
    let controller_gone = crate::api::connection::read(&path).is_err() || client(cli).and_then(|c| Ok(c.health()?)).is_err();
    if controller_gone && super::launch::stop_launched(&path)? {
        println!("wasmpar: stopped the engines a stopped controller had launched");
        return Ok(ExitCode::SUCCESS);
    }
    let info = crate::api::connection::read(&path).ok();
    let c = client(cli)?;
    c.post::<serde_json::Value>("/v1/shutdown", &json!({}))?;
    // Wait for the process to go (its connection file goes with it).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let alive = info.as_ref().is_some_and(|i| unsafe { libc::kill(i.pid as i32, 0) } == 0);
        if !alive && !path.exists() {
            break;
        }
        if !alive {
            let _ = std::fs::remove_file(&path);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if p.json {
        p.print_json(&json!({"stopped": c.url}));
    } else {
        println!("wasmpar: stopped the cluster at {}", c.url);
    }
    Ok(ExitCode::SUCCESS)
}
