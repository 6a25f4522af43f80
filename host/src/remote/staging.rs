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
//! The other way, a pulled array of [`STAGE_MIN`] or more is uploaded by the
//! engine process (`PUT /v1/staged/{id}`, its own random id) before it names
//! the id in its `Pulled` answer, and the controller takes it from here.
//!
//! Invariants:
//! - A staged buffer is shared (`Bytes`), never copied per engine.
//! - An upload nobody takes (its process died before answering) is dropped
//!   after [`UPLOAD_TTL`], at the next upload.
//! - Every id put here is removed when its push is answered, failed or
//!   abandoned, or its link closes, so nothing stays staged after the job
//!   that named it.
//! - A growing entry ends exactly once: complete with all its bytes, or
//!   failed (its readers see an error, never a short value).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::engine::NsValue;

/// Values at least this large (in bytes) are staged; smaller ones travel
/// inline as their array form, where one message costs less than a fetch.
pub const STAGE_MIN: usize = 256 * 1024;

/// How long an engine process's upload waits to be taken.
pub const UPLOAD_TTL: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Staging {
    shelf: Mutex<HashMap<String, Staged>>,
    /// Uploads from engine processes, with when they came.
    uploads: Mutex<HashMap<String, (Bytes, Instant)>>,
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

    /// An engine process uploaded a pulled value's bytes under `id`.
    pub fn upload(&self, id: String, bytes: Bytes) {
        let mut uploads = self.uploads.lock();
        uploads.retain(|_, (_, at)| at.elapsed() < UPLOAD_TTL);
        uploads.insert(id, (bytes, Instant::now()));
    }

    /// The bytes uploaded under `id`, taken off the shelf.
    pub fn take_upload(&self, id: &str) -> Option<Bytes> {
        self.uploads.lock().remove(id).map(|(b, _)| b)
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

/// The buffer a staged value is fetched into: its final numbers.
pub enum StagedBuf {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bytes(Vec<u8>),
}

impl StagedBuf {
    pub fn new(kind: &str, items: usize) -> std::result::Result<StagedBuf, String> {
        Ok(match kind {
            "float-list" | "float-array" => StagedBuf::F64(vec![0.0; items]),
            "int-list" | "int-array" => StagedBuf::I64(vec![0; items]),
            "bytes" => StagedBuf::Bytes(vec![0; items]),
            other => return Err(format!("a staged value of kind {other:?} is not known here")),
        })
    }

    /// The buffer's memory, to be filled with the little-endian items.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        fn bytes_of<T: Copy>(v: &mut [T]) -> &mut [u8] {
            // SAFETY: `T` is f64 or i64, plain numbers without padding for
            // which every bit pattern is valid; u8 has no alignment.
            unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        }
        match self {
            StagedBuf::F64(v) => bytes_of(v),
            StagedBuf::I64(v) => bytes_of(v),
            StagedBuf::Bytes(v) => v,
        }
    }

    /// The value, its items read as little-endian (a no-op on such hosts).
    pub fn into_value(self, kind: &str, shape: Vec<usize>) -> NsValue {
        let list = kind.ends_with("-list");
        match self {
            StagedBuf::F64(mut v) => {
                if cfg!(target_endian = "big") {
                    v.iter_mut().for_each(|x| *x = f64::from_bits(u64::from_le(x.to_bits())));
                }
                if list {
                    NsValue::FloatList(Arc::new(v))
                } else {
                    NsValue::FloatArray { shape, data: Arc::new(v) }
                }
            }
            StagedBuf::I64(mut v) => {
                if cfg!(target_endian = "big") {
                    v.iter_mut().for_each(|x| *x = i64::from_le(*x));
                }
                if list {
                    NsValue::IntList(Arc::new(v))
                } else {
                    NsValue::IntArray { shape, data: Arc::new(v) }
                }
            }
            StagedBuf::Bytes(v) => NsValue::Bytes(Arc::new(v)),
        }
    }
}

/// The header a staged value travels as in a message (`Push`, `Pulled`);
/// `kind` is `NsValue::kind` of the value its bytes make.
pub fn header(id: &str, kind: &str, dtype: crate::value::Dtype, shape: &[usize]) -> serde_json::Value {
    serde_json::json!({"$staged": id, "kind": kind, "dtype": dtype.name(), "shape": shape})
}

/// What a staged header says: (id, kind, shape).
pub fn parse_header(v: &serde_json::Value) -> Option<(&str, &str, Vec<usize>)> {
    let id = v.get("$staged")?.as_str()?;
    let kind = v.get("kind").and_then(serde_json::Value::as_str).unwrap_or("");
    let shape = v.get("shape")?.as_array()?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<Vec<_>>>()?;
    Some((id, kind, shape))
}

/// The value of `kind` and `shape` whose little-endian items are `bytes`.
pub fn value_from_bytes(kind: &str, shape: Vec<usize>, bytes: &[u8]) -> Result<NsValue, String> {
    let items = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("its shape is too large")?;
    let mut buf = StagedBuf::new(kind, items)?;
    let dst = buf.as_bytes_mut();
    if dst.len() != bytes.len() {
        return Err(format!("{} bytes do not make the {} of its shape", bytes.len(), dst.len()));
    }
    dst.copy_from_slice(bytes);
    Ok(buf.into_value(kind, shape))
}
