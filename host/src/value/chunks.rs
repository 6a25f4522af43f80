//! JSON text written as a list of [`Bytes`] chunks, for big answers: the
//! base64 string of one buffer (one namespace array pushed to every engine
//! is one shared buffer) is encoded once per answer and each later mention
//! sends the same memory again, and nothing passes through a
//! `serde_json::Value` or serde_json's string escaping on the way.
//!
//! Invariant: the concatenated chunks are exactly the compact JSON that
//! `serde_json::to_vec` gives for the same value (keys in the same order).

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value as Json;

use super::array::{encode_base64, Dtype};

/// Strings shorter than this are written inline rather than as a chunk of their own.
const SHARED_FROM: usize = 64 << 10;

#[derive(Default)]
pub struct JsonChunks {
    chunks: Vec<Bytes>,
    cur: Vec<u8>,
    /// Base64 already written, by the (address, length) of its bytes.
    encoded: HashMap<(usize, usize), Bytes>,
}

impl JsonChunks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Text that is already JSON.
    pub fn raw(&mut self, text: &str) {
        self.cur.extend_from_slice(text.as_bytes());
    }

    pub fn value<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        // Writing to a Vec fails only for a map with non-string keys, which
        // no caller writes; it would show as missing text, not a panic.
        let _ = serde_json::to_writer(&mut self.cur, v);
    }

    /// The array form `{"data":"<base64>","dtype":..,"shape":[..]}` of
    /// `bytes` (little-endian items), as `ArrayForm::to_json` writes it.
    pub fn array_form(&mut self, dtype: Dtype, shape: &[usize], bytes: &[u8]) {
        self.raw("{\"data\":\"");
        if bytes.len() < SHARED_FROM {
            self.cur.extend_from_slice(&encode_base64(bytes));
        } else {
            let key = (bytes.as_ptr() as usize, bytes.len());
            let b64 = self.encoded.entry(key).or_insert_with(|| Bytes::from(encode_base64(bytes))).clone();
            self.flush();
            self.chunks.push(b64);
        }
        self.raw("\",\"dtype\":");
        self.value(dtype.name());
        self.raw(",\"shape\":");
        self.value(shape);
        self.raw("}");
    }

    /// Any other value, through serde_json.
    pub fn json(&mut self, v: &Json) {
        self.value(v);
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            self.chunks.push(Bytes::from(std::mem::take(&mut self.cur)));
        }
    }

    pub fn finish(mut self) -> Vec<Bytes> {
        self.flush();
        self.chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ArrayForm;

    #[test]
    fn chunks_spell_the_same_json_and_share_big_strings() {
        let xs: Vec<f64> = (0..20_000).map(|i| i as f64 * 0.25 - 7.0).collect();
        let a = ArrayForm::from_f64(vec![100, 200], &xs);
        let mut out = JsonChunks::new();
        out.raw("[");
        out.array_form(Dtype::F64, &a.shape, &a.data);
        out.raw(",");
        out.array_form(Dtype::F64, &a.shape, &a.data);
        out.raw(",");
        out.json(&serde_json::json!({"k": [1, "two"]}));
        out.raw("]");
        let chunks = out.finish();
        let text: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let expected = serde_json::to_vec(&serde_json::json!([a.to_json(), a.to_json(), {"k": [1, "two"]}])).expect("json");
        assert_eq!(String::from_utf8_lossy(&text), String::from_utf8_lossy(&expected));
        let big: Vec<&Bytes> = chunks.iter().filter(|c| c.len() > SHARED_FROM).collect();
        assert_eq!(big.len(), 2);
        assert_eq!(big[0].as_ptr(), big[1].as_ptr(), "encoded once, sent twice");
    }
}
