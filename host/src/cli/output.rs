//! Printing results IPython Parallel's way (`[stdout:0] …`, `Out[0:3]: …`,
//! errors per engine in red), or as JSON with `--json`. Colours only on a
//! terminal.

use std::io::IsTerminal;

use serde_json::Value as Json;

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

    pub fn print_json(&self, v: &Json) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    }

    /// Per-engine stdout/stderr blocks and image notes.
    pub fn outputs(&self, task: &Json) {
        for o in task["outputs"].as_array().into_iter().flatten() {
            let e = o["engine"].as_u64().unwrap_or(0);
            for (stream, label) in [("stdout", "stdout"), ("stderr", "stderr")] {
                let text = o[stream].as_str().unwrap_or("");
                if text.is_empty() {
                    continue;
                }
                let lines: Vec<&str> = text.trim_end_matches('\n').lines().collect();
                let tag = format!("[{label}:{e}]");
                let tag = if stream == "stderr" { self.red(&tag) } else { self.dim(&tag) };
                if lines.len() == 1 {
                    println!("{tag} {}", lines[0]);
                } else {
                    println!("{tag}");
                    for l in lines {
                        println!("{l}");
                    }
                }
            }
            let n = o["images"].as_array().map_or(0, Vec::len);
            if n > 0 {
                println!("{} {n} image(s) (use --save-images DIR to write them)", self.dim(&format!("[output:{e}]")));
            }
        }
    }

    /// The error of a failed task, one block per engine.
    pub fn error(&self, task: &Json) {
        let err = &task["error"];
        let kind = err["kind"].as_str().unwrap_or("Error");
        let errors = err["errors"].as_array().cloned().unwrap_or_default();
        if errors.is_empty() {
            eprintln!("{} {}", self.red(&format!("{kind}:")), err["message"].as_str().unwrap_or(""));
            return;
        }
        if errors.len() > 1 {
            eprintln!("{}", self.red(&format!("{kind}: {} engines failed", errors.len())));
        }
        for e in errors {
            let id = e["engine"].as_u64().unwrap_or(0);
            let f = e["function"].as_str().unwrap_or("");
            eprintln!("{} {}", self.red(&format!("[{id}:{f}]")), e["message"].as_str().unwrap_or(""));
            if let Some(trace) = e["trace"].as_str().filter(|t| !t.is_empty()) {
                for l in trace.lines() {
                    eprintln!("    {}", self.dim(l));
                }
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
