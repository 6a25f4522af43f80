//! Printing results IPython Parallel's way (`[stdout:0] …`, `Out[0:3]: …`,
//! errors per engine in red), or as JSON with `--json`. Colours only on a
//! terminal.

use std::io::IsTerminal;

use serde_json::Value as Json;

use crate::wire::TaskView;

pub struct Printer {
    pub json: bool,
    color: bool,
}

impl Printer {
    pub fn new(json: bool) -> Printer {
        let color = !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Printer { json, color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }

    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }

    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }

    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }

    pub fn print_json(&self, v: &impl serde::Serialize) {
        match serde_json::to_string_pretty(v) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("cannot print as JSON: {e}"),
        }
    }

    /// Per-engine stdout/stderr blocks and image notes.
    pub fn outputs(&self, task: &TaskView) {
        for o in &task.outputs {
            let e = o.engine;
            for (text, label) in [(&o.stdout, "stdout"), (&o.stderr, "stderr")] {
                if text.is_empty() {
                    continue;
                }
                let lines: Vec<&str> = text.trim_end_matches('\n').lines().collect();
                let tag = format!("[{label}:{e}]");
                let tag = if label == "stderr" { self.red(&tag) } else { self.dim(&tag) };
                if lines.len() == 1 {
                    println!("{tag} {}", lines[0]);
                } else {
                    println!("{tag}");
                    for l in lines {
                        println!("{l}");
                    }
                }
            }
            let n = o.images.len();
            if n > 0 {
                println!("{} {n} image(s) (use --save-images DIR to write them)", self.dim(&format!("[output:{e}]")));
            }
        }
    }

    /// The error of a failed task, one block per engine.
    pub fn error(&self, task: &TaskView) {
        let Some(err) = &task.error else {
            eprintln!("{} the task ended as {:?} without an error", self.red("Error:"), task.status);
            return;
        };
        let kind = err.kind.as_str();
        if err.errors.is_empty() {
            eprintln!("{} {}", self.red(&format!("{kind}:")), err.message);
            return;
        }
        if err.errors.len() > 1 {
            eprintln!("{}", self.red(&format!("{kind}: {} engines failed", err.errors.len())));
        }
        for e in &err.errors {
            eprintln!("{} {}", self.red(&format!("[{}:{}]", e.engine, e.function)), e.message);
            for l in e.trace.lines() {
                eprintln!("    {}", self.dim(l));
            }
        }
    }
}

/// A value on one line, as IPython would show it.
pub fn short(v: &Json) -> String {
    match v {
        Json::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}
