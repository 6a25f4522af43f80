//! The messages between a controller and an engine process, one JSON text
//! frame each over a WebSocket (`GET /v1/engines/connect`).
//!
//! Invariants:
//! - The engine process speaks first (`Hello`, with the token) and the
//!   controller answers `Welcome` (its ids for the process's engines) or
//!   `Refused`; nothing else is sent before.
//! - Every job carries a request number `req` unique on its connection; the
//!   answer names it. A job whose answer never comes (the link broke) fails
//!   on the controller as `EngineLost`, never hangs.
//! - Call arguments travel as JSON of their WIT type, numeric lists in the
//!   base64 array form (the conversion round trips exactly, see
//!   `tests/all/props.rs`). A `Call` carries a group of batches and is
//!   answered by one `Outcome` with an entry per batch, so tiny tasks do not
//!   pay a message each way per batch.
//! - Large namespace values and component bytes never travel inside
//!   messages: the engine process fetches them over HTTP, components once by
//!   digest (`GET /v1/blobs/{digest}`), pushed arrays as raw little-endian
//!   bytes staged for it (`GET /v1/staged/{id}`, see [`super::staging`]);
//!   small values go inline as their array form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::value::Encoding;
use crate::wire::{EngineFailure, EngineOutput};

/// The protocol's version: a process and a controller must agree on it.
pub const PROTOCOL: u32 = 2;

/// Which uploaded component a job is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComponentRef {
    pub name: String,
    pub digest: String,
}

/// The results of one batch of a `Call`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchAnswer {
    pub results: Result<Vec<Json>, EngineFailure>,
    pub output: EngineOutput,
}

/// Engine process → controller.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromEngine {
    /// The token went in the upgrade request's `Authorization` header.
    Hello {
        protocol: u32,
        /// Chosen once per process: the same process reconnecting is known
        /// again and gets its former engine ids.
        process: String,
        host: String,
        pid: u32,
        engines: usize,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
    /// An engine started a batch of task `task` (it is `running` now).
    Started {
        task: u64,
    },
    /// Calls of task `task` finished since the last report.
    Progress {
        task: u64,
        done: usize,
    },
    /// The answer of a `Call`: one entry per batch, in order. Fewer entries
    /// than batches means the engine crashed before the rest ran.
    Outcome {
        req: u64,
        outcomes: Vec<BatchAnswer>,
    },
    /// The answer of a `Push`.
    Pushed {
        req: u64,
    },
    /// The answer of a `Pull`: values as array-form JSON, or the missing name.
    Pulled {
        req: u64,
        values: Result<Vec<Json>, String>,
    },
    /// The answer of an `Install`.
    Installed {
        req: u64,
        result: Result<Vec<String>, String>,
    },
    /// A job could not be carried out at all (unknown component digest,
    /// bytes that do not compile here): it fails with this message.
    Failed {
        req: u64,
        message: String,
    },
    Pong {
        seq: u64,
    },
}

/// Controller → engine process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToEngine {
    Welcome {
        ids: Vec<usize>,
        /// How often the controller pings; the process treats a controller
        /// silent for a few of these as gone.
        heartbeat_ms: u64,
    },
    Refused {
        message: String,
    },
    Call {
        req: u64,
        engine: usize,
        task: u64,
        component: ComponentRef,
        function: String,
        encoding: Encoding,
        timeout_ms: u64,
        /// Batches of calls, run in order; each call is a list of
        /// arguments, where `{"$ref": name}` reads a global.
        batches: Vec<Vec<Vec<Json>>>,
    },
    /// Values as their array form, or `{"$staged": id, "kind", "dtype",
    /// "shape"}` for one to fetch from `GET /v1/staged/{id}`.
    Push {
        req: u64,
        engine: usize,
        values: Vec<(String, Json)>,
    },
    Pull {
        req: u64,
        engine: usize,
        names: Vec<String>,
    },
    Install {
        req: u64,
        engine: usize,
        component: ComponentRef,
    },
    Forget {
        engine: usize,
        digest: String,
    },
    Cancel {
        task: u64,
    },
    Ping {
        seq: u64,
    },
}
