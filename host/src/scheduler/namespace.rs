//! Namespace operations over direct targets: push, pull, scatter, gather
//! (IPython Parallel's `dv.push`, `dv.pull`, `dv.scatter`, `dv.gather`).

use serde_json::{Map, Value as Json};
use tokio::sync::oneshot;

use super::partition;
use super::targets::Targets;
use super::Controller;
use crate::engine::python::{python_only, PythonState, PYTHON_MARKER};
use crate::engine::{Job, NsValue, StagedRef};
use crate::remote::staging::{Growing, Staging};
use std::sync::Arc;

pub use crate::error::cut;
use crate::value::{ArrayForm, Dtype, Encoding, JsonChunks};
use crate::{Error, Result};

impl Controller {
    // ---- namespace -----------------------------------------------------------

    pub(super) async fn each_engine<T: Send + 'static>(
        &self,
        ids: &[usize],
        make: impl Fn(usize, oneshot::Sender<T>) -> Job,
    ) -> Result<Vec<T>> {
        let mut rxs = Vec::with_capacity(ids.len());
        for &id in ids {
            let (tx, rx) = oneshot::channel();
            self.pool.send(id, make(id, tx))?;
            rxs.push((id, rx));
        }
        let mut out = Vec::with_capacity(rxs.len());
        for (id, rx) in rxs {
            out.push(rx.await.map_err(|_| Error::EngineGone(format!("engine {id} failed while handling the request; it was restarted")))?);
        }
        Ok(out)
    }

    pub async fn push(&self, targets: &Targets, values: &Map<String, Json>) -> Result<Vec<usize>> {
        self.push_values(targets, values.iter().map(|(name, v)| (name.clone(), NsValue::from_json(v))).collect()).await
    }

    /// Push values decoded by the caller (`Err`: why one could not be),
    /// checked as [`Controller::push`] checks a JSON body's.
    pub async fn push_values(&self, targets: &Targets, values: Vec<(String, std::result::Result<NsValue, String>)>) -> Result<Vec<usize>> {
        let ids = self.direct(targets, "push")?;
        if values.is_empty() {
            return Err(Error::BadRequest("push: `values` names nothing to push".into()));
        }
        let mut parsed = Vec::with_capacity(values.len());
        for (name, value) in values {
            check_global_name(&name)?;
            parsed.push((name.clone(), value.map_err(|m| Error::BadRequest(format!("push `{name}`: {m}")))?));
        }
        self.each_engine(&ids, |_, reply| Job::Push { values: parsed.clone(), reply }).await?;
        Ok(ids)
    }

    /// Push one already-decoded value (the binary route).
    pub async fn push_value(&self, targets: &Targets, name: &str, value: NsValue) -> Result<Vec<usize>> {
        check_global_name(name)?;
        let ids = self.direct(targets, "push")?;
        self.each_engine(&ids, |_, reply| Job::Push { values: vec![(name.to_string(), value.clone())], reply }).await?;
        Ok(ids)
    }

    /// Begin a raw float64 push of `len` bytes whose body is still to be
    /// read: remote engines among `targets` are told now and fetch the bytes
    /// as they arrive ([`StreamedPush::append`]), so the client's upload and
    /// the engines' downloads overlap. `None` when no target is remote (the
    /// plain path is as fast then). `shape` must already hold `len / 8` items.
    pub fn begin_streamed_push(&self, targets: &Targets, name: &str, shape: Vec<usize>, len: usize) -> Result<Option<StreamedPush>> {
        check_global_name(name)?;
        let ids = self.direct(targets, "push")?;
        let (remote, local): (Vec<usize>, Vec<usize>) = ids.iter().partition(|&&id| self.pool.is_remote(id));
        if remote.is_empty() {
            return Ok(None);
        }
        let (id, growing) = self.staging.put_stream(len);
        let kind = if shape.len() == 1 { "float-list" } else { "float-array" };
        let staged = StagedRef { id: id.clone(), kind, dtype: Dtype::F64, shape };
        let mut push = StreamedPush { name: name.to_string(), ids, local, replies: Vec::new(), id, growing, staging: self.staging.clone() };
        for engine in remote {
            let (reply, rx) = oneshot::channel();
            // On an error `push` is dropped: the entry fails and is removed.
            self.pool.send(engine, Job::PushStaged { name: name.to_string(), staged: staged.clone(), reply })?;
            push.replies.push((engine, rx));
        }
        Ok(Some(push))
    }

    /// The body of a streamed push was read whole (into `value`, when
    /// [`StreamedPush::has_local`]): the local engines get it, and the push
    /// is answered once every engine has it.
    pub async fn finish_streamed_push(&self, mut push: StreamedPush, value: Option<NsValue>) -> Result<Vec<usize>> {
        push.growing.complete();
        let mut outcome = match (&value, push.local.is_empty()) {
            (_, true) => Ok(()),
            (Some(value), false) => self
                .each_engine(&push.local, |_, reply| Job::Push { values: vec![(push.name.clone(), value.clone())], reply })
                .await
                .map(|_| ()),
            (None, false) => Err(Error::Internal("a streamed push to in-process engines came without its value".into())),
        };
        for (engine, rx) in std::mem::take(&mut push.replies) {
            if rx.await.is_err() && outcome.is_ok() {
                outcome = Err(Error::EngineGone(format!(
                    "engine {engine} could not take the pushed value (its process failed to fetch it, or was lost)"
                )));
            }
        }
        outcome.map(|()| push.ids.clone())
    }

    /// The value a raw-bytes push stands for: `data` holds `shape`'s items of
    /// `dtype` (one dimension of all of them when `shape` is not given).
    pub fn raw_value(&self, dtype: Dtype, shape: Option<Vec<usize>>, data: RawData) -> Result<NsValue> {
        let count = match &data {
            RawData::F64(v) => v.len(),
            RawData::Bytes(b) => {
                if b.len() % dtype.size() != 0 {
                    return Err(Error::BadRequest(format!("{} bytes is not a whole number of {} items", b.len(), dtype.name())));
                }
                b.len() / dtype.size()
            }
        };
        let shape = shape.unwrap_or_else(|| vec![count]);
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(count) {
            return Err(Error::BadRequest(format!("shape {:?} does not hold {count} items", cut(&format!("{shape:?}")))));
        }
        Ok(match data {
            RawData::F64(floats) if dtype == Dtype::F64 => {
                let floats = Arc::new(floats);
                if shape.len() == 1 {
                    NsValue::FloatList(floats)
                } else {
                    NsValue::FloatArray { shape, data: floats }
                }
            }
            RawData::F64(floats) => NsValue::from_array(ArrayForm::from_f64(shape, &floats)),
            RawData::Bytes(bytes) => NsValue::from_array(ArrayForm { dtype, shape, data: bytes }),
        })
    }

    /// One engine's array as (dtype, shape, little-endian bytes): the binary
    /// pull, sharing the engine's buffer where the host is little-endian.
    pub async fn pull_raw(&self, targets: &Targets, name: &str) -> Result<(Dtype, Vec<usize>, bytes::Bytes)> {
        let value = self.pull_value(targets, name).await?;
        value.to_raw().ok_or_else(|| Error::BadRequest(format!("`{}` is a {}, not a numeric list or array", cut(name), value.kind())))
    }

    /// One engine's value of `name` (the binary route).
    pub async fn pull_value(&self, targets: &Targets, name: &str) -> Result<NsValue> {
        let ids = self.direct(targets, "pull")?;
        let [id] = ids.as_slice() else {
            return Err(Error::BadRequest(format!("a binary pull reads one engine; the targets select {}", ids.len())));
        };
        let mut values = self.pull_values(&[*id], &[name.to_string()]).await?;
        values.pop().and_then(|mut v| v.pop()).ok_or_else(|| Error::not_found("name", name))
    }

    async fn pull_values(&self, ids: &[usize], names: &[String]) -> Result<Vec<Vec<NsValue>>> {
        if names.is_empty() {
            return Err(Error::BadRequest("pull: give at least one name".into()));
        }
        let replies = self.each_engine(ids, |_, reply| Job::Pull { names: names.to_vec(), reply }).await?;
        let mut out = Vec::with_capacity(replies.len());
        for (&id, reply) in ids.iter().zip(replies) {
            match reply {
                Ok(values) => out.push(values),
                Err(name) => return Err(self.missing_name(id, &name).await),
            }
        }
        Ok(out)
    }

    /// The error of a pull that found no `name` on engine `id`: when the
    /// Python runner lists it as a Python-only global there, say its type.
    /// Asked afterwards (local and remote engines alike), so that a pull
    /// that finds its names costs nothing more.
    async fn missing_name(&self, id: usize, name: &str) -> Error {
        let plain = Error::not_found_hint("name", cut(name), format!(" on engine {id}"));
        if name == PYTHON_MARKER {
            return plain;
        }
        let Ok(mut replies) = self.each_engine(&[id], |_, reply| Job::Pull { names: vec![PYTHON_MARKER.to_string()], reply }).await else {
            return plain;
        };
        let state = match replies.pop() {
            Some(Ok(values)) => values.first().and_then(PythonState::from_value),
            _ => None,
        };
        match state.as_ref().and_then(|s| s.type_of(name)) {
            Some(ty) => Error::not_found_hint("name", cut(name), format!(" in the namespace: {}", python_only(name, id, ty))),
            None => plain,
        }
    }

    pub async fn pull(&self, targets: &Targets, names: &[String], encoding: Encoding) -> Result<(Vec<usize>, Vec<Map<String, Json>>)> {
        let ids = self.direct(targets, "pull")?;
        let values = self.pull_values(&ids, names).await?;
        let maps = values.into_iter().map(|vals| names.iter().cloned().zip(vals.iter().map(|v| v.to_json(encoding))).collect()).collect();
        Ok((ids, maps))
    }

    /// The pull answer, `{"engines": [..], "values": [{name: value}, ..]}`,
    /// as the JSON text `PullAnswer` serializes to, in chunks: an array
    /// shared by several engines is base64-encoded once and sent from the
    /// same memory for each.
    pub async fn pull_json(&self, targets: &Targets, names: &[String], encoding: Encoding) -> Result<JsonChunks> {
        let ids = self.direct(targets, "pull")?;
        let values = self.pull_values(&ids, names).await?;
        let mut out = JsonChunks::new();
        out.raw("{\"engines\":");
        out.value(&ids);
        out.raw(",\"values\":[");
        for (i, vals) in values.iter().enumerate() {
            out.raw(if i == 0 { "{" } else { ",{" });
            // A JSON object as `Map` writes it: names sorted, each once.
            let named: std::collections::BTreeMap<&String, &NsValue> = names.iter().zip(vals).collect();
            for (j, (name, v)) in named.into_iter().enumerate() {
                if j > 0 {
                    out.raw(",");
                }
                out.value(name);
                out.raw(":");
                v.write_json(encoding, &mut out);
            }
            out.raw("}");
        }
        out.raw("]}");
        Ok(out)
    }

    pub async fn scatter(&self, name: &str, values: &Json, targets: &Targets) -> Result<Vec<usize>> {
        check_global_name(name)?;
        let ids = self.direct(targets, "scatter")?;
        let chunks: Vec<NsValue> = match values {
            Json::Array(items) => partition::contiguous(items.len(), ids.len())
                .into_iter()
                .map(|r| NsValue::from_json(&Json::Array(items[r].to_vec())))
                .collect::<std::result::Result<_, _>>()
                .map_err(|m| Error::BadRequest(format!("scatter: {m}")))?,
            Json::Object(obj) => match ArrayForm::from_json(obj) {
                Some(Ok(a)) if !a.shape.is_empty() => {
                    let whole = NsValue::from_array(a);
                    let len = whole.rows().unwrap_or(0);
                    partition::contiguous(len, ids.len())
                        .into_iter()
                        .map(|r| whole.slice(r.start, r.end).ok_or_else(|| Error::BadRequest("scatter: cannot split this array".into())))
                        .collect::<Result<_>>()?
                }
                Some(Err(m)) => return Err(Error::BadRequest(format!("scatter: {m}"))),
                _ => return Err(Error::BadRequest("scatter: `values` must be a list or an array form".into())),
            },
            other => {
                return Err(Error::BadRequest(format!(
                    "scatter: `values` must be a list or an array form, got {}",
                    crate::value::describe_json(other)
                )))
            }
        };
        self.each_engine(&ids, |i, reply| {
            let pos = ids.iter().position(|&x| x == i).unwrap_or(0);
            Job::Push { values: vec![(name.to_string(), chunks[pos].clone())], reply }
        })
        .await?;
        Ok(ids)
    }

    pub async fn gather(&self, name: &str, targets: &Targets, encoding: Encoding) -> Result<Json> {
        let ids = self.direct(targets, "gather")?;
        let values = self.pull_values(&ids, &[name.to_string()]).await?;
        let parts: Vec<NsValue> = values.into_iter().flatten().collect();
        let whole = NsValue::concat(&parts).map_err(|m| Error::BadRequest(format!("gather `{name}`: {m}")))?;
        Ok(whole.to_json(encoding))
    }
}

pub(super) fn check_global_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!("{:?} is not a usable global name (1-256 characters, no control characters)", cut(name))));
    }
    Ok(())
}

/// The bytes of a raw push: f64s read straight into their final buffer, or
/// the body's bytes for other dtypes.
pub enum RawData {
    F64(Vec<f64>),
    Bytes(bytes::Bytes),
}

/// A raw push under way to remote engines (see
/// [`Controller::begin_streamed_push`]). Dropped before it finished (the
/// client's body broke, or was refused), its staged bytes fail and go: the
/// engine processes drop what they fetched and keep their namespaces.
pub struct StreamedPush {
    name: String,
    ids: Vec<usize>,
    local: Vec<usize>,
    replies: Vec<(usize, oneshot::Receiver<()>)>,
    id: String,
    growing: Arc<Growing>,
    staging: Arc<Staging>,
}

impl StreamedPush {
    /// Whether in-process engines are among the targets (they need the
    /// value itself, not only its bytes).
    pub fn has_local(&self) -> bool {
        !self.local.is_empty()
    }

    /// More of the body arrived.
    pub fn append(&self, chunk: bytes::Bytes) {
        self.growing.append(chunk);
    }
}

impl Drop for StreamedPush {
    fn drop(&mut self) {
        self.growing.fail("the push was abandoned before its body was read whole");
        self.staging.remove(&self.id);
    }
}
