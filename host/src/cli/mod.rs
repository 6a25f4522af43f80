//! The `wasmpar` command: a thin layer that parses, calls the API (or the
//! library, for `start` and `demo`) and prints. The core decides.

mod args;
mod cluster;
mod demo;
mod engine;
mod history;
mod launch;
mod npy;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value as Json};

use crate::client::{urlencode, Client, ClientError};
use crate::wire::{ComponentInfo, EngineList, ImportSource, Op, Status, TaskView};
use output::{short, Printer};

#[derive(Parser, Debug)]
#[command(
    name = "wasmpar",
    version,
    about = "IPython Parallel's model on WebAssembly components: start a cluster, upload components, map and apply over engines"
)]
pub struct Cli {
    /// The cluster's connection file (default: $WASMPAR_CONNECTION_FILE, else ~/.wasmpar/cluster.json).
    #[arg(long, global = true, env = "WASMPAR_CONNECTION_FILE")]
    pub connection_file: Option<PathBuf>,
    /// The server's URL (overrides the connection file).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The API token (overrides the connection file).
    #[arg(long, global = true, env = "WASMPAR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a controller and N engines in this process (`ipcluster start -n N`).
    Start(Box<cluster::StartArgs>),
    /// Stop the cluster of the connection file.
    Stop,
    /// List engines with their state, host, queue and completed counts.
    Engines {
        /// Wait until at least N engines can take work (`rc.wait_for_engines(N)`).
        #[arg(long, value_name = "N")]
        wait: Option<usize>,
        /// Seconds to wait with --wait.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// An engine process joining a cluster (`ipengine`): `engine --connect URL -n K`.
    Engine(engine::EngineArgs),
    /// Upload a component (the uploader): shows its exports and imports.
    Upload {
        file: PathBuf,
        /// Name to call it by (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
    },
    /// List uploaded components.
    Components,
    /// Install a library component on engines (`sync_imports`).
    Install {
        component: String,
        #[arg(long, short = 't', default_value = "all")]
        targets: String,
    },
    /// Call COMPONENT/FUNCTION once on every target engine.
    Apply(CallArgs),
    /// Call COMPONENT/FUNCTION once per element of the sequences.
    Map(CallArgs),
    /// Give each target engine its chunk of the sequences (`@parallel`).
    Parallel(CallArgs),
    /// Run Python code (`-c CODE`, `-f cell.py`) or a call on targets and
    /// print per engine, as `%px` does.
    Px(CallArgs),
    /// Push globals to engines: `push a=3 b=2`.
    Push {
        #[arg(required = true)]
        assignments: Vec<String>,
        #[arg(long, short = 't', default_value = "all")]
        targets: String,
    },
    /// Pull globals from engines: `pull a b`.
    Pull {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long, short = 't', default_value = "all")]
        targets: String,
        /// Save one engine's array (-t ID) of one name as a numpy .npy file, fetched as raw bytes.
        #[arg(long, value_name = "FILE")]
        npy: Option<String>,
    },
    /// Partition VALUES into NAME on each engine.
    Scatter {
        name: String,
        values: String,
        #[arg(long, short = 't', default_value = "all")]
        targets: String,
    },
    /// Concatenate NAME from the engines, in engine order.
    Gather {
        name: String,
        #[arg(long, short = 't', default_value = "all")]
        targets: String,
    },
    /// Show a task (`%pxresult`; without an id, the last --noblock task).
    Result {
        id: Option<String>,
        /// Seconds to wait for it to finish.
        #[arg(long)]
        wait: Option<f64>,
    },
    /// Cancel a task.
    Cancel { id: String },
    /// The main job: Mandelbrot on an embedded cluster, serial vs parallel, PNG written.
    Demo(demo::DemoArgs),
    /// Past tasks from the task store, newest first (`db_query`).
    History(history::HistoryArgs),
    /// Print the dashboard's URL (the token rides in its fragment).
    Dashboard,
}

#[derive(Args, Debug)]
pub struct CallArgs {
    /// COMPONENT/FUNCTION, e.g. seed/add3 (px: or -c / -f).
    #[arg(default_value = "", required_unless_present_any = ["code", "file"])]
    pub call: String,
    /// px: a cell of Python code, run by the Python runner (op execute).
    #[arg(long, short = 'c', conflicts_with = "file")]
    pub code: Option<String>,
    /// px: a file of Python code, run as one cell.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Arguments (apply, px) or sequences (map, parallel): JSON, @file.json, range(10), arange(0,1,0.1), or a bare word.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Engines: all, ::2, 2, 1,3, balanced.
    #[arg(long, short = 't', default_value = "all")]
    pub targets: String,
    /// A named argument (apply) or a constant for every call (map, parallel): name=value.
    #[arg(long = "kw", value_name = "NAME=VALUE")]
    pub kwargs: Vec<String>,
    /// A sequence (map, parallel), in addition to positional ones.
    #[arg(long = "seq", value_name = "VALUES")]
    pub seqs: Vec<String>,
    /// Balanced map: items per batch.
    #[arg(long)]
    pub chunksize: Option<usize>,
    /// Balanced map: results in completion order.
    #[arg(long)]
    pub unordered: bool,
    /// Return at once with the task id.
    #[arg(long)]
    pub noblock: bool,
    /// Per-call deadline in seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Ask for list-of-number results as base64 array forms.
    #[arg(long)]
    pub array: bool,
    /// Write images the calls showed into this directory.
    #[arg(long, value_name = "DIR")]
    pub save_images: Option<PathBuf>,
}

/// Run the CLI; the exit status is non-zero on any error, remote or local.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new(cli.json);
    match run(cli, &printer) {
        Ok(code) => code,
        Err(e) => {
            if printer.json {
                let kind = match e.downcast_ref::<ClientError>() {
                    Some(ClientError::Api { kind, .. }) => kind.clone(),
                    _ => "Error".into(),
                };
                printer.print_json(&json!({"error": {"kind": kind, "message": format!("{e:#}")}}));
            } else {
                eprintln!("{} {e:#}", printer.red("error:"));
            }
            ExitCode::FAILURE
        }
    }
}

fn connection_path(cli: &Cli) -> PathBuf {
    cli.connection_file.clone().unwrap_or_else(crate::api::connection::default_path)
}

fn client(cli: &Cli) -> Result<Client> {
    if let (Some(url), Some(token)) = (&cli.url, &cli.token) {
        return Ok(Client::new(url, token));
    }
    let path = connection_path(cli);
    let mut info = crate::api::connection::read(&path).map_err(|source| ClientError::NoConnection { path: path.clone(), source })?;
    if let Some(url) = &cli.url {
        info.url = url.clone();
    }
    if let Some(token) = &cli.token {
        info.token = token.clone();
    }
    Ok(Client::from_info(&info))
}

fn last_task_file(cli: &Cli) -> PathBuf {
    connection_path(cli).with_extension("last-task")
}

fn run(cli: Cli, p: &Printer) -> Result<ExitCode> {
    match &cli.command {
        Command::Start(a) => cluster::start(&cli, a, p),
        Command::Demo(a) => demo::run(a, p),
        Command::History(a) => history::history(&cli, a, p),
        Command::Dashboard => history::dashboard(&cli, p),
        Command::Stop => cluster::stop(&cli, p),
        Command::Engines { wait, timeout } => {
            let list = match wait {
                Some(n) => engine::wait_for_engines(&cli, *n, *timeout)?,
                None => client(&cli)?.engines()?,
            };
            if p.json {
                p.print_json(&list);
            } else {
                println!(
                    "{:>6}  {:<6} {:<6} {:<16} {:>8} {:>7} {:>10} {:>9}  labels / libraries",
                    "engine", "state", "kind", "host", "pid", "queued", "completed", "restarts"
                );
                for e in &list.engines {
                    let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).chain(e.libraries.iter().cloned()).collect();
                    println!(
                        "{:>6}  {:<6} {:<6} {:<16} {:>8} {:>7} {:>10} {:>9}  {}",
                        e.id,
                        e.state,
                        e.kind,
                        e.host,
                        e.pid,
                        e.queued,
                        e.completed,
                        e.restarts,
                        labels.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Engine(a) => engine::run_engine(&cli, a, p),
        Command::Upload { file, name } => upload(&cli, file, name.as_deref(), p),
        Command::Components => {
            let list = client(&cli)?.components()?;
            if p.json {
                p.print_json(&list);
            } else {
                for c in &list.components {
                    print_component(c, p);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Install { component, targets } => {
            let report = client(&cli)?.install(component, &args::parse_targets(targets))?;
            if p.json {
                p.print_json(&report);
            } else {
                println!("installed {component} on engines {} ({})", list_ids(&report.engines), report.interfaces.join(", "));
                for r in &report.replaced {
                    println!("  replaced {r}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply(a) => call(&cli, "apply", a, p, false),
        Command::Map(a) => call(&cli, "map", a, p, false),
        Command::Parallel(a) => call(&cli, "parallel", a, p, false),
        Command::Px(a) => call(&cli, "apply", a, p, true),
        Command::Push { assignments, targets } => {
            let c = client(&cli)?;
            let mut values = Map::new();
            let mut names = Vec::new();
            let mut answer = None;
            for a in assignments {
                // NAME=@file.npy goes as raw bytes through the binary route.
                if let Some((name, path)) = a.split_once("=@").filter(|(_, p)| p.ends_with(".npy")) {
                    let arr = npy::read(path)?;
                    let shape = arr.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
                    let query = format!("dtype={}&shape={}&targets={}", urlencode(&arr.descr), urlencode(&shape), urlencode(targets));
                    answer = Some(c.put_bytes(&format!("/v1/namespace/{}?{query}", urlencode(name)), arr.data)?);
                } else {
                    let (k, val) = args::parse_assignment(a)?;
                    values.insert(k, val);
                }
                names.push(a.split('=').next().unwrap_or("").to_string());
            }
            if !values.is_empty() {
                answer = Some(c.push(&args::parse_targets(targets), &values)?);
            }
            let Some(answer) = answer else { bail!("push needs NAME=VALUE or NAME=@file.npy") };
            if p.json {
                p.print_json(&answer);
            } else {
                println!("pushed {} to engines {}", names.join(", "), list_ids(&answer.engines));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pull { names, targets, npy: Some(file) } => {
            let [name] = names.as_slice() else { bail!("--npy saves one name") };
            let (dtype, shape, bytes) =
                client(&cli)?.get_bytes(&format!("/v1/namespace/{}?targets={}", urlencode(name), urlencode(targets)))?;
            let descr = match dtype.as_str() {
                "float64" => "<f8",
                "int64" => "<i8",
                "uint8" => "|u1",
                other => bail!("cannot save dtype {other} as .npy"),
            };
            npy::write(file, descr, &shape, &bytes)?;
            if p.json {
                p.print_json(&json!({"file": file, "dtype": dtype, "shape": shape}));
            } else {
                println!("saved {name} ({dtype}, shape {shape:?}) to {file}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pull { names, targets, npy: None } => {
            let answer = client(&cli)?.pull(targets, names)?;
            if p.json {
                p.print_json(&answer);
            } else {
                for (e, vals) in answer.engines.iter().zip(&answer.values) {
                    let shown: Vec<String> = names.iter().map(|n| short(vals.get(n).unwrap_or(&Json::Null))).collect();
                    let body = if names.len() == 1 { shown[0].clone() } else { format!("[{}]", shown.join(", ")) };
                    println!("{} {body}", p.dim(&format!("[{e}]")));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Scatter { name, values, targets } => {
            let answer = client(&cli)?.scatter(name, &args::parse_value(values)?, &args::parse_targets(targets))?;
            if p.json {
                p.print_json(&answer);
            } else {
                println!("scattered {name} over engines {}", list_ids(&answer.engines));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gather { name, targets } => {
            let answer = client(&cli)?.gather(name, targets)?;
            if p.json {
                p.print_json(&answer);
            } else {
                println!("{}", answer.values);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Result { id, wait } => {
            let id = match id {
                Some(id) => id.clone(),
                None => std::fs::read_to_string(last_task_file(&cli))
                    .map(|s| s.trim().to_string())
                    .context("no task id given and no --noblock task remembered")?,
            };
            let task = client(&cli)?.task(&id, *wait)?;
            Ok(show_task(&task, p, true, None, None))
        }
        Command::Cancel { id } => {
            let task = client(&cli)?.cancel(id)?;
            if p.json {
                p.print_json(&task);
            } else {
                println!("task {id}: {}", status_name(task.status));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list_ids(ids: &[usize]) -> String {
    ids.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Running => "running",
        Status::Done => "done",
        Status::Failed => "failed",
        Status::Cancelled => "cancelled",
        Status::Lost => "lost",
    }
}

fn print_component(c: &ComponentInfo, p: &Printer) {
    let digest = &c.digest[..12.min(c.digest.len())];
    println!("{} {}", p.bold(&c.name), p.dim(&format!("sha256:{digest} ({} bytes)", c.size)));
    for f in &c.exports {
        println!("  export {}: {}", f.name, f.signature);
    }
    for i in &c.interfaces {
        println!("  export interface {i}");
    }
    for i in &c.import_sources {
        let lib = i.library.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
        let src = serde_json::to_value(i.source).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let line = format!("  import {} ← {src}{lib}", i.name);
        println!("{}", if i.source == ImportSource::Unresolved { p.red(&line) } else { line });
    }
}

fn upload(cli: &Cli, file: &std::path::Path, name: Option<&str>, p: &Printer) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => file.file_stem().and_then(|s| s.to_str()).map(|s| s.replace('_', "-")).context("give --name")?,
    };
    let total = bytes.len() as u64;
    let bar = if p.json || total < (1 << 20) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(format!("uploading {name}"));
        b
    };
    let b2 = bar.clone();
    let info = client(cli)?.upload(&name, bytes, move |sent| b2.set_position(sent))?;
    bar.finish_and_clear();
    if p.json {
        p.print_json(&info);
    } else {
        print_component(&info, p);
    }
    Ok(ExitCode::SUCCESS)
}

fn call(cli: &Cli, op: &str, a: &CallArgs, p: &Printer, px: bool) -> Result<ExitCode> {
    let code = match (&a.code, &a.file) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(f)) => Some(std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?),
        (None, None) => None,
    };
    if let Some(code) = code {
        if !px {
            bail!("-c and -f are for px");
        }
        if !a.call.is_empty() || !a.args.is_empty() || !a.kwargs.is_empty() || !a.seqs.is_empty() {
            bail!("px -c/-f runs Python code: give no COMPONENT/FUNCTION or arguments");
        }
        let mut task = json!({"op": "execute", "code": code, "targets": args::parse_targets(&a.targets)});
        if let Some(t) = a.timeout {
            task["timeout_s"] = json!(t);
        }
        return submit_and_show(cli, task, a, p, true);
    }
    let (component, function) = args::parse_call(&a.call)?;
    let mut kwargs = Map::new();
    for kw in &a.kwargs {
        let (k, v) = args::parse_assignment(kw)?;
        kwargs.insert(k, v);
    }
    let values: Vec<Json> = a.args.iter().chain(&a.seqs).map(|s| args::parse_value(s)).collect::<Result<_>>()?;
    let mut task = json!({
        "op": op, "component": component, "function": function,
        "targets": args::parse_targets(&a.targets), "kwargs": kwargs,
        "ordered": !a.unordered,
        "result_encoding": if a.array { "array" } else { "json" },
    });
    if op == "apply" {
        task["args"] = Json::Array(values);
    } else {
        if values.is_empty() {
            bail!("{op} needs at least one sequence (e.g. range(10) or [1,2,3])");
        }
        task["sequences"] = Json::Array(values);
    }
    if let Some(c) = a.chunksize {
        task["chunksize"] = json!(c);
    }
    if let Some(t) = a.timeout {
        task["timeout_s"] = json!(t);
    }
    submit_and_show(cli, task, a, p, px)
}

fn submit_and_show(cli: &Cli, mut task: Json, a: &CallArgs, p: &Printer, px: bool) -> Result<ExitCode> {
    let client = client(cli)?;
    task["block"] = json!(false);
    let submitted = client.submit(&task)?;
    let id = submitted.id.clone();
    if a.noblock {
        let _ = std::fs::write(last_task_file(cli), &id);
        if p.json {
            p.print_json(&submitted);
        } else {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let finished = wait_with_progress(&client, &id, &submitted, p)?;
    // %px numbers outputs Out[engine:count]; the engine's completed jobs serve as the count.
    let counts = if px { client.engines().ok() } else { None };
    Ok(show_task(&finished, p, px, a.save_images.as_deref(), counts.as_ref()))
}

/// Poll the task (long-poll, no busy loop) with a progress bar on long maps.
fn wait_with_progress(client: &Client, id: &str, first: &TaskView, p: &Printer) -> Result<TaskView> {
    let total = first.progress.total as u64;
    let bar = if p.json || total < 2 {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        // Only worth drawing if the task takes a while.
        b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        b
    };
    let started = std::time::Instant::now();
    let mut task = first.clone();
    let mut drawn = false;
    while !task.status.is_finished() {
        if !drawn && started.elapsed() > Duration::from_millis(500) && !p.json && total >= 2 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            drawn = true;
        }
        task = client.task(id, Some(0.25))?;
        bar.set_position(task.progress.done as u64);
    }
    bar.finish_and_clear();
    Ok(task)
}

fn show_task(task: &TaskView, p: &Printer, px: bool, save_images: Option<&std::path::Path>, engines_now: Option<&EngineList>) -> ExitCode {
    if let Some(dir) = save_images {
        save_task_images(task, dir);
    }
    if p.json {
        p.print_json(task);
        return if task.status == Status::Done { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    p.outputs(task);
    match task.status {
        Status::Done => {
            let result = task.result.as_ref().unwrap_or(&Json::Null);
            match result.as_array() {
                Some(items) if matches!(task.op, Op::Apply | Op::Execute) && !task.engines.is_empty() => {
                    print_outs(task, task.engines.iter().copied().zip(items), p, engines_now);
                }
                _ if task.delivered || task.evicted => {
                    println!("{}", p.dim("(the result is no longer kept)"))
                }
                _ => println!("{}", short(result)),
            }
            let _ = px;
            ExitCode::SUCCESS
        }
        Status::Pending | Status::Running => {
            println!("task {} is {}: {}/{} done", task.id, status_name(task.status), task.progress.done, task.progress.total);
            ExitCode::SUCCESS
        }
        Status::Failed | Status::Cancelled | Status::Lost => {
            // The engines that finished show their Out as %px does, then the errors.
            if let Some(err) = task.error.as_ref().filter(|e| !e.results.is_empty()) {
                match task.op {
                    Op::Apply | Op::Execute => print_outs(task, err.results.iter().map(|r| (r.engine, &r.result)), p, engines_now),
                    Op::Map | Op::Parallel => {
                        for r in &err.results {
                            println!("{} {}", p.green(&format!("[result:{}]", r.engine)), short(&r.result));
                        }
                    }
                }
            }
            p.error(task);
            ExitCode::FAILURE
        }
    }
}

/// `Out[engine:count]: value` for each engine's non-null value.
fn print_outs<'a>(task: &TaskView, values: impl Iterator<Item = (usize, &'a Json)>, p: &Printer, engines_now: Option<&EngineList>) {
    for (e, v) in values.filter(|(_, v)| !v.is_null()) {
        let count =
            engines_now.and_then(|all| all.engines.iter().find(|x| x.id == e)).map(|x| format!(":{}", x.completed)).unwrap_or_default();
        // A cell's Out is already its repr.
        let shown = match (task.op, v) {
            (Op::Execute, Json::String(repr)) => repr.clone(),
            _ => short(v),
        };
        println!("{} {}", p.green(&format!("Out[{e}{count}]:")), shown);
    }
}

fn save_task_images(task: &TaskView, dir: &std::path::Path) {
    use base64::Engine as _;
    let _ = std::fs::create_dir_all(dir);
    for o in &task.outputs {
        for (i, img) in o.images.iter().enumerate() {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(img) {
                let path = dir.join(format!("engine{}-{i}.png", o.engine));
                match std::fs::write(&path, bytes) {
                    Ok(()) => eprintln!("wrote {}", path.display()),
                    Err(e) => eprintln!("cannot write {}: {e}", path.display()),
                }
            }
        }
    }
}
