//! `wasmpar engine --connect URL`: an engine process that joins a cluster
//! (`ipengine`), and `wasmpar engines --wait N` (`rc.wait_for_engines`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::output::Printer;
use super::{client, Cli};
use crate::remote::agent::{self, AgentConfig, AgentEnd};
use crate::runtime::Limits;

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// The controller's URL (default: the connection file's). The token comes
    /// from --connection-file, $WASMPAR_TOKEN or --token (argv is visible to
    /// every user of the host: prefer the first two).
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,
    /// Trust exactly the controller certificate with this SHA-256
    /// (`sha256:<hex>`, as in the connection file); default: the connection
    /// file's, else normal verification of an https URL.
    #[arg(long, env = "WASMPAR_TLS_FINGERPRINT", value_name = "sha256:HEX")]
    pub tls_fingerprint: Option<String>,
    /// Engines in this process (default: one per core).
    #[arg(short = 'n', long)]
    pub engines: Option<usize>,
    /// A label for this process's engines, shown in `wasmpar engines`: k=v.
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Seconds to keep trying to reach a controller that went away before
    /// exiting (no orphan engines on a cluster).
    #[arg(long, default_value_t = 120.0)]
    pub grace: f64,
    /// Memory cap per engine, MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mib: usize,
    /// Where compiled components are cached on this host.
    #[arg(long)]
    pub cache_dir: Option<std::path::PathBuf>,
}

pub fn run_engine(cli: &Cli, a: &EngineArgs, p: &Printer) -> Result<ExitCode> {
    super::cluster::init_logging();
    let file = cli.connection_file.clone();
    let from_file = file.as_ref().and_then(|f| crate::api::connection::read(f).ok());
    let url = match (&a.connect, &from_file) {
        (Some(u), _) => u.clone(),
        (None, Some(info)) => info.url.clone(),
        (None, None) => bail!("give the controller's URL (--connect URL) or its connection file (--connection-file F)"),
    };
    let token = match (&cli.token, &from_file) {
        (Some(t), _) => t.clone(),
        (None, Some(info)) => info.token.clone(),
        (None, None) => bail!("no token: pass --connection-file F (the file `wasmpar start` wrote) or set $WASMPAR_TOKEN"),
    };
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').with_context(|| format!("label {l:?} is not k=v"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    if !(a.grace.is_finite() && a.grace >= 0.0) {
        bail!("--grace must be a number of seconds");
    }
    let defaults = Limits::default();
    let limits =
        Limits { memory_per_engine: a.memory_mib << 20, cache_dir: a.cache_dir.clone().or(defaults.cache_dir.clone()), ..defaults };
    let engines = a.engines.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if engines == 0 {
        bail!("-n must be at least 1");
    }
    let config = AgentConfig {
        url: url.clone(),
        token,
        // Only a file given explicitly is re-read on reconnect.
        connection_file: file.filter(|_| from_file.is_some() && a.connect.is_none()),
        tls_fingerprint: a.tls_fingerprint.clone().or_else(|| from_file.as_ref().and_then(|info| info.tls_fingerprint.clone())),
        engines,
        labels,
        grace: Duration::from_secs_f64(a.grace),
        limits,
    };
    if !p.json {
        eprintln!("wasmpar engine: {engines} engines joining {url}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    match rt.block_on(agent::run(config)) {
        Ok(AgentEnd::ControllerGone) => {
            eprintln!("wasmpar engine: no controller for {} s; exiting", a.grace);
            Ok(ExitCode::from(3))
        }
        Err(e) => bail!("{e}"),
    }
}

/// Wait until `n` engines can take work (`rc.wait_for_engines(n)`).
pub fn wait_for_engines(cli: &Cli, n: usize, timeout: f64) -> Result<crate::wire::EngineList> {
    let c = client(cli)?;
    let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
    loop {
        let list = c.engines()?;
        let live = list.engines.iter().filter(|e| e.state != "lost").count();
        if live >= n {
            return Ok(list);
        }
        if Instant::now() >= deadline {
            bail!("{live} of {n} engines after {timeout} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
