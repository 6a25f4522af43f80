//! The framed body (API.md, "Framed bodies"): a JSON document followed by
//! raw buffers, as IPython Parallel's messages carry a header and buffers.
//! Big arrays then travel as their bytes, with no base64 and no JSON
//! string to scan on either side.
//!
//! ```text
//! body  := frame frame*            content type application/x-wasmpar-frames
//! frame := length (u64, little-endian) then that many bytes
//! ```
//!
//! The first frame is the JSON document; frame k+1 is buffer k. In the
//! document an array form may name a buffer instead of carrying `data`:
//! `{"dtype": "float64", "shape": [60000], "buffer": 0}`.
//!
//! Invariants:
//! - Parsing never copies: the document and the buffers are slices of the
//!   one body (`Bytes`).
//! - Every buffer a request sends is named by some array form; a buffer's
//!   length is checked against its form's dtype and shape as `data` is.

use bytes::Bytes;
use serde_json::{Map, Value as Json};

use super::array::{checked_shape, dtype_of, ArrayForm, Dtype};

/// The media type of a framed body, in `Content-Type` and `Accept`.
pub const FRAMES_MEDIA_TYPE: &str = "application/x-wasmpar-frames";

/// A framed body split into its document and buffers.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    pub document: Bytes,
    pub buffers: Vec<Bytes>,
}

impl Frames {
    /// Splits `body` into frames; the error says where it went wrong.
    pub fn parse(body: Bytes) -> Result<Frames, String> {
        let mut frames = Vec::new();
        let mut at = 0usize;
        while at < body.len() {
            let index = frames.len();
            let Some(head) = body.get(at..at + 8) else {
                return Err(format!(
                    "framed body: frame {index} starts at byte {at} but only {} bytes remain for its 8-byte length",
                    body.len() - at
                ));
            };
            let mut len = [0u8; 8];
            len.copy_from_slice(head);
            let len = u64::from_le_bytes(len);
            let start = at + 8;
            let remaining = (body.len() - start) as u64;
            if len > remaining {
                return Err(format!("framed body: frame {index} says {len} bytes but only {remaining} follow"));
            }
            let end = start + len as usize;
            frames.push(body.slice(start..end));
            at = end;
        }
        let mut frames = frames.into_iter();
        let Some(document) = frames.next() else {
            return Err("framed body: it is empty; the first frame must be the JSON document".into());
        };
        Ok(Frames { document, buffers: frames.collect() })
    }

    /// The body: the document, then each buffer, each behind its length.
    /// Chunks, so that buffers are sent from where they are.
    pub fn write(document: Vec<u8>, buffers: Vec<Bytes>) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(2 + 2 * buffers.len());
        let mut head = Vec::with_capacity(8 + document.len());
        head.extend_from_slice(&(document.len() as u64).to_le_bytes());
        head.extend_from_slice(&document);
        out.push(Bytes::from(head));
        for b in buffers {
            out.push(Bytes::copy_from_slice(&(b.len() as u64).to_le_bytes()));
            out.push(b);
        }
        out
    }
}

/// `Some` when `obj` is an array form naming a buffer (`dtype` and
/// `buffer`), as the form with that buffer's bytes, or an error when the
/// form is broken or names a buffer the body lacks.
pub fn buffer_form(obj: &Map<String, Json>, buffers: &[Bytes]) -> Option<Result<ArrayForm, String>> {
    Some(buffer_form_parts(obj, buffers)?.map(|(dtype, shape, bytes)| {
        // A slice of the body where it is aligned for the dtype (the typed
        // fast path reads it in place); a copy, which malloc aligns, where
        // it is not (a document whose length is not a multiple of 8).
        let data = if read_in_place(dtype, bytes) { bytes.clone() } else { Bytes::copy_from_slice(bytes) };
        ArrayForm { dtype, shape, data }
    }))
}

/// A buffer form's dtype, shape and the buffer it names.
pub type BufferParts<'b> = (Dtype, Vec<usize>, &'b Bytes);

/// [`buffer_form`]'s checks without the form: its dtype, its shape and the
/// buffer it names, or the same errors.
pub fn buffer_form_parts<'b>(obj: &Map<String, Json>, buffers: &'b [Bytes]) -> Option<Result<BufferParts<'b>, String>> {
    if !(obj.contains_key("dtype") && obj.contains_key("buffer")) {
        return None;
    }
    Some((|| {
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "dtype" | "shape" | "buffer")) {
            return Err(format!("array form: unknown field `{}` (expected dtype, shape, buffer)", crate::error::cut(k)));
        }
        let dtype = dtype_of(obj)?;
        let k = obj.get("buffer").and_then(Json::as_u64).ok_or("array form: `buffer` must be the index of a buffer of the framed body")?;
        let bytes = usize::try_from(k).ok().and_then(|k| buffers.get(k)).ok_or_else(|| {
            format!("array form: `buffer` {k} names no buffer (the framed body has {} after its document)", buffers.len())
        })?;
        let shape = checked_shape(obj, dtype, bytes.len())?;
        Ok((dtype, shape, bytes))
    })())
}

/// Whether a buffer of `dtype` items is used where it lies in the body
/// (aligned for the dtype) rather than copied.
pub fn read_in_place(dtype: Dtype, bytes: &Bytes) -> bool {
    (bytes.as_ptr() as usize).is_multiple_of(dtype.size().max(1))
}

/// The indices of the buffers that array forms in `values` name, for the
/// check that none was sent for nothing.
pub fn named_buffers<'a>(values: impl IntoIterator<Item = &'a Json>, named: &mut Vec<bool>) {
    fn walk(v: &Json, named: &mut Vec<bool>) {
        match v {
            Json::Object(o) => {
                if o.contains_key("dtype") {
                    if let Some(k) = o.get("buffer").and_then(Json::as_u64).and_then(|k| usize::try_from(k).ok()) {
                        if let Some(slot) = named.get_mut(k) {
                            *slot = true;
                        }
                    }
                }
                o.values().for_each(|v| walk(v, named));
            }
            Json::Array(items) => items.iter().for_each(|v| walk(v, named)),
            _ => {}
        }
    }
    for v in values {
        walk(v, named);
    }
}

/// `v` with the bytes of every array form moved into buffers: each form's
/// base64 `data` becomes `"buffer": k` and its decoded bytes buffer k (a
/// framed answer). A form whose data does not decode is kept as it is.
/// `v` is only read: a form's base64 text is decoded from where it is,
/// never copied first.
pub fn with_buffers(v: &Json, buffers: &mut Vec<Bytes>) -> Json {
    match v {
        Json::Object(o) => {
            let is_form = o.len() <= 3 && o.contains_key("dtype") && o.get("data").is_some_and(Json::is_string);
            if is_form {
                if let Some(Ok(form)) = ArrayForm::from_json(o) {
                    let mut doc: Map<String, Json> =
                        o.iter().filter(|(k, _)| k.as_str() != "data").map(|(k, v)| (k.clone(), v.clone())).collect();
                    doc.insert("buffer".into(), Json::from(buffers.len()));
                    buffers.push(form.data);
                    return Json::Object(doc);
                }
            }
            Json::Object(o.iter().map(|(k, v)| (k.clone(), with_buffers(v, buffers))).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(|v| with_buffers(v, buffers)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(doc: &[u8], bufs: &[&[u8]]) -> Bytes {
        let chunks = Frames::write(doc.to_vec(), bufs.iter().map(|b| Bytes::copy_from_slice(b)).collect());
        Bytes::from(chunks.concat())
    }

    #[test]
    fn frames_round_trip() {
        let f = Frames::parse(body(b"{}", &[b"abc", b"", &[1, 2, 3, 4, 5, 6, 7, 8]])).expect("parses");
        assert_eq!(&f.document[..], b"{}");
        assert_eq!(f.buffers.len(), 3);
        assert_eq!(&f.buffers[0][..], b"abc");
        assert!(f.buffers[1].is_empty());
        assert_eq!(f.buffers[2].len(), 8);
    }

    #[test]
    fn broken_frames_say_where() {
        let whole = body(b"{}", &[b"abcdef"]);
        let cut = whole.slice(..whole.len() - 2);
        let err = Frames::parse(cut).expect_err("truncated");
        assert!(err.contains("frame 1 says 6 bytes but only 4 follow"), "{err}");
        let err = Frames::parse(whole.slice(..13)).expect_err("half a length");
        assert!(err.contains("frame 1 starts at byte 10"), "{err}");
        assert!(Frames::parse(Bytes::new()).expect_err("empty").contains("empty"));
        let huge = Bytes::from(u64::MAX.to_le_bytes().to_vec());
        assert!(Frames::parse(huge).expect_err("huge").contains("frame 0 says"));
    }

    #[test]
    fn buffer_forms_are_checked_like_data() {
        let bufs = vec![Bytes::from(vec![0u8; 16]), Bytes::from(vec![0u8; 12])];
        let ok = json!({"dtype": "float64", "shape": [2], "buffer": 0});
        let form = buffer_form(ok.as_object().expect("obj"), &bufs).expect("a form").expect("valid");
        assert_eq!((form.shape, form.data.len()), (vec![2], 16));
        for (bad, says) in [
            (json!({"dtype": "float64", "shape": [3], "buffer": 0}), "needs 3 items but data holds 2"),
            (json!({"dtype": "float64", "buffer": 1}), "12 bytes is not a whole number of float64 items"),
            (json!({"dtype": "float64", "buffer": 2}), "names no buffer (the framed body has 2"),
            (json!({"dtype": "float64", "buffer": "0"}), "`buffer` must be the index"),
            (json!({"dtype": "float64", "buffer": 0, "data": ""}), "unknown field `data`"),
            (json!({"dtype": "float7", "buffer": 0}), "unknown dtype"),
        ] {
            let err = buffer_form(bad.as_object().expect("obj"), &bufs).expect("a form").expect_err("broken");
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(buffer_form(json!({"dtype": "float64"}).as_object().expect("obj"), &bufs).is_none());
    }

    #[test]
    fn aligned_buffers_are_read_in_place_and_the_others_copied() {
        // One 8-aligned body (malloc's alignment) holding 40 float64s; a
        // buffer at byte 8 is aligned, one at byte 4 is not.
        let items: Vec<f64> = (0..40).map(|i| i as f64 * 0.25).collect();
        let body = Bytes::from(crate::value::array::f64s_to_le(&items));
        let form = json!({"dtype": "float64", "shape": [2], "buffer": 0});
        for (at, in_place) in [(8usize, true), (4, false)] {
            let bufs = vec![body.slice(at..at + 16)];
            let got = buffer_form(form.as_object().expect("obj"), &bufs).expect("a form").expect("valid");
            assert_eq!(&got.data[..], &body[at..at + 16], "the same bytes either way");
            assert_eq!(got.data.as_ptr() == bufs[0].as_ptr(), in_place, "buffer at byte {at}");
            assert_eq!(got.data.as_ptr() as usize % 8, 0, "what the typed path reads is aligned");
        }
    }

    #[test]
    fn answers_give_their_arrays_as_buffers() {
        let form = ArrayForm::from_f64(vec![2], &[1.5, -2.0]).to_json();
        let original = json!({"result": [form.clone(), {"x": form}, [1, 2]], "other": "text"});
        let mut bufs = Vec::new();
        let v = with_buffers(&original, &mut bufs);
        assert_eq!(v["other"], "text");
        assert_eq!(v["result"][2], json!([1, 2]));
        let broken = json!({"dtype": "float64", "data": "not base64!"});
        assert_eq!(with_buffers(&broken, &mut Vec::new()), broken, "a form that does not decode stays as it is");
        assert_eq!(bufs.len(), 2);
        assert_eq!(v["result"][1]["x"], json!({"dtype": "float64", "shape": [2], "buffer": 1}));
        assert_eq!(&bufs[0][..], &[1.5f64.to_le_bytes(), (-2.0f64).to_le_bytes()].concat()[..]);
        let mut named = vec![false; 3];
        named_buffers([&v], &mut named);
        assert_eq!(named, vec![true, true, false]);
    }
}
