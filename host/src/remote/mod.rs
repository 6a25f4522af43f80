//! Engines in other processes and on other hosts: `wasmpar engine --connect`
//! (the [`agent`]) registers with a controller over one WebSocket; on the
//! controller each of its engines is a pool slot whose jobs go through the
//! [`link`]. The messages are in [`protocol`].
//!
//! Every connection is inbound to the controller (as in IPython Parallel):
//! engine processes can sit behind NAT or in batch jobs. What survives what:
//! - an engine process that dies (SIGKILL) closes its socket: its engines are
//!   `lost` at once, direct tasks on them fail with `EngineLost`, balanced
//!   batches run again elsewhere (`retries`);
//! - a silent process (SIGSTOP, a cut network) is declared lost after
//!   [`SILENCE`] without an answer to the heartbeat;
//! - a controller that goes away: the engine processes keep their engines
//!   and namespaces, reconnect with backoff, and get their ids back; after
//!   their grace period without a controller they exit.

pub mod agent;
pub mod link;
pub mod protocol;
pub mod staging;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::engine::{EnginePool, Placement};
use link::EngineLink;
use protocol::{FromEngine, ToEngine, PROTOCOL};
use staging::Staging;

/// How often the controller pings each engine process.
pub const HEARTBEAT: Duration = Duration::from_millis(1000);
/// Silence after which a process is declared lost: three missed heartbeats
/// (the bound is 5 s).
pub const SILENCE: Duration = Duration::from_millis(3500);

/// Serve one engine process's connection until it closes.
pub async fn serve(socket: WebSocket, pool: Arc<EnginePool>, staging: Arc<Staging>) {
    let (mut sink, mut stream) = socket.split();
    let hello = match tokio::time::timeout(Duration::from_secs(10), next(&mut stream)).await {
        Ok(Some(FromEngine::Hello { protocol, process, host, pid, engines, labels })) => {
            if protocol != PROTOCOL {
                let message =
                    format!("protocol {protocol} is not this controller's ({PROTOCOL}): run the same wasmpar version on both sides");
                let _ = send(&mut sink, &ToEngine::Refused { message }).await;
                return;
            }
            if engines == 0 || engines > 4096 {
                let _ = send(&mut sink, &ToEngine::Refused { message: format!("{engines} engines is not a usable count") }).await;
                return;
            }
            (process, Placement { host, pid, labels, remote: true }, engines)
        }
        _ => {
            tracing::warn!("an engine connection did not say hello; closed");
            return;
        }
    };
    let (process, placement, engines) = hello;
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ToEngine>();
    let link = EngineLink::new(process.clone(), out_tx, staging);
    let ids = pool.attach_remote(&process, placement, engines, Arc::new(link.clone()));
    link.set_engines(ids.iter().filter_map(|&id| pool.info(id)).collect());
    if send(&mut sink, &ToEngine::Welcome { ids, heartbeat_ms: HEARTBEAT.as_millis() as u64 }).await.is_err() {
        link.close(&pool);
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if send(&mut sink, &msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let watcher = tokio::spawn(link::watch(link.clone(), pool.clone(), HEARTBEAT, SILENCE));
    while let Some(msg) = next(&mut stream).await {
        if link.is_closed() {
            break;
        }
        link.receive(msg);
    }
    link.close(&pool);
    watcher.abort();
    writer.abort();
}

async fn send<S>(sink: &mut S, msg: &ToEngine) -> Result<(), String>
where
    S: futures::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    sink.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
}

async fn next<S>(stream: &mut S) -> Option<FromEngine>
where
    S: futures::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Message::Text(text)) => match serde_json::from_str(text.as_str()) {
                Ok(msg) => return Some(msg),
                Err(e) => tracing::warn!("ignoring an engine message that does not parse: {e}"),
            },
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}
