//! Large pushed values on their way to engine processes: the controller
//! stages a value's raw little-endian bytes under an unguessable id, names
//! the id in the `Push` message, and the engine process fetches the bytes
//! over HTTP (`GET /v1/staged/{id}`, behind the token) — streamed from the
//! same shared buffer for every engine, never base64 inside a message.
//!
//! A raw push (`PUT /v1/namespace/{name}`) is staged while its body still
//! arrives ([`Staging::put_stream`]): the engine processes fetch each chunk
//! as the controller receives it, so the two network legs overlap instead
//! of adding up.
//!
//! Invariants:
//! - A staged buffer is shared (`Bytes`), never copied per engine.
//! - Every id put here is removed when its push is answered, failed or
//!   abandoned, or its link closes, so nothing stays staged after the job
//!   that named it.
//! - A growing entry ends exactly once: complete with all its bytes, or
//!   failed (its readers see an error, never a short value).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Values at least this large (in bytes) are staged; smaller ones travel
/// inline as their array form, where one message costs less than a fetch.
pub const STAGE_MIN: usize = 256 * 1024;

#[derive(Default)]
pub struct Staging {
    shelf: Mutex<HashMap<String, Staged>>,
}

/// What a staged id holds.
#[derive(Clone)]
pub enum Staged {
    Whole(Bytes),
    Growing(Arc<Growing>),
}

/// Bytes still arriving: the chunks so far, and how it ended.
pub struct Growing {
    /// The length it will have when complete.
    pub total: usize,
    state: Mutex<GrowingState>,
    changed: Notify,
}

#[derive(Default)]
struct GrowingState {
    chunks: Vec<Bytes>,
    received: usize,
    end: Option<Result<(), String>>,
}

impl Staging {
    /// Stage `bytes`; the id to fetch them by.
    pub fn put(&self, bytes: Bytes) -> String {
        self.insert(Staged::Whole(bytes))
    }

    /// Stage `total` bytes that are still to come ([`Growing::append`]).
    pub fn put_stream(&self, total: usize) -> (String, Arc<Growing>) {
        let growing = Arc::new(Growing { total, state: Mutex::default(), changed: Notify::new() });
        (self.insert(Staged::Growing(growing.clone())), growing)
    }

    fn insert(&self, staged: Staged) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.shelf.lock().insert(id.clone(), staged);
        id
    }

    pub fn get(&self, id: &str) -> Option<Staged> {
        self.shelf.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &str) {
        self.shelf.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.shelf.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Growing {
    /// More bytes arrived. Ignored once the entry has ended; bytes past
    /// `total` fail it (the caller checks lengths first, so this is a bug
    /// guard, never a short or long value for a reader).
    pub fn append(&self, chunk: Bytes) {
        let mut s = self.state.lock();
        if s.end.is_some() {
            return;
        }
        s.received += chunk.len();
        if s.received > self.total {
            s.end = Some(Err(format!("more than the {} bytes announced arrived", self.total)));
        } else {
            s.chunks.push(chunk);
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// All bytes arrived (fails the entry if they are fewer than announced).
    pub fn complete(&self) {
        let mut s = self.state.lock();
        if s.end.is_none() {
            s.end = Some(if s.received == self.total {
                Ok(())
            } else {
                Err(format!("the body ended after {} of {} bytes", s.received, self.total))
            });
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// No more bytes will come: readers get `message` as an error.
    pub fn fail(&self, message: &str) {
        let mut s = self.state.lock();
        if s.end.is_none() {
            s.end = Some(Err(message.to_string()));
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// The chunks from the first on, as they arrive; an error if the entry
    /// fails before it is complete.
    pub fn chunks(self: Arc<Self>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures::stream::unfold((self, 0usize, false), |(g, next, ended)| async move {
            if ended {
                return None;
            }
            loop {
                // Registered before looking, so no wake-up is missed.
                let changed = g.changed.notified();
                let step = {
                    let s = g.state.lock();
                    match (s.chunks.get(next), &s.end) {
                        (_, Some(Err(e))) => Some(Err(std::io::Error::other(e.clone()))),
                        (Some(chunk), _) => Some(Ok(chunk.clone())),
                        (None, Some(Ok(()))) => return None,
                        (None, None) => None,
                    }
                };
                match step {
                    Some(item) => {
                        drop(changed);
                        let ended = item.is_err();
                        return Some((item, (g, next + usize::from(!ended), ended)));
                    }
                    None => changed.await,
                }
            }
        })
    }
}
