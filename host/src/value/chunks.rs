//! JSON text written as a list of [`Bytes`] chunks, for big answers: the
//! base64 string of one buffer (one namespace array pushed to every engine
//! is one shared buffer) is encoded once per answer and each later mention
//! sends the same memory again, and nothing passes through a
//! `serde_json::Value` or serde_json's string escaping on the way.
//! [`JsonChunks::finish`] encodes everything before answering;
//! [`JsonChunks::stream`] encodes a big buffer piece by piece while the
//! pieces before it are being sent.
//!
//! Invariant: the concatenated chunks are exactly the compact JSON that
//! `serde_json::to_vec` gives for the same value (keys in the same order),
//! whichever way they are finished.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value as Json;

use super::array::{encode_base64, Dtype};

/// Strings shorter than this are written inline rather than as a chunk of their own.
const SHARED_FROM: usize = 64 << 10;

/// Source bytes per streamed piece of base64 (a multiple of 3, so the
/// pieces' text concatenates to the whole string's; 1 MiB of text each).
const PIECE: usize = 3 << 18;

enum Part {
    Text(Bytes),
    /// The base64 of source `k` (its first mention, or a later one).
    Base64(usize),
}

#[derive(Default)]
pub struct JsonChunks {
    parts: Vec<Part>,
    cur: Vec<u8>,
    /// The big buffers to encode, and their index by (address, length).
    sources: Vec<Bytes>,
    seen: HashMap<(usize, usize), usize>,
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
    pub fn array_form(&mut self, dtype: Dtype, shape: &[usize], bytes: Bytes) {
        self.raw("{\"data\":\"");
        if bytes.len() < SHARED_FROM {
            self.cur.extend_from_slice(&encode_base64(&bytes));
        } else {
            let key = (bytes.as_ptr() as usize, bytes.len());
            let next = self.sources.len();
            let k = *self.seen.entry(key).or_insert(next);
            if k == next {
                self.sources.push(bytes);
            }
            self.flush();
            self.parts.push(Part::Base64(k));
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
            self.parts.push(Part::Text(Bytes::from(std::mem::take(&mut self.cur))));
        }
    }

    /// The whole text's length in bytes.
    pub fn len(&mut self) -> usize {
        self.flush();
        let b64 = |k: usize| self.sources[k].len().div_ceil(3) * 4;
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::Base64(k) => b64(*k),
            })
            .sum()
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// The chunks, every big buffer encoded now (on all cores), once.
    pub fn finish(mut self) -> Vec<Bytes> {
        self.flush();
        let encoded: Vec<Bytes> = self.sources.iter().map(|b| Bytes::from(encode_base64(b))).collect();
        self.parts
            .into_iter()
            .map(|p| match p {
                Part::Text(t) => t,
                Part::Base64(k) => encoded[k].clone(),
            })
            .collect()
    }

    /// The chunks as they are made: a task walks the parts, encodes each
    /// big buffer in pieces as the channel takes them (while hyper sends
    /// the pieces before), keeps the pieces for its later mentions, and
    /// stops when the receiver is dropped (the client went away).
    pub fn stream(mut self) -> tokio::sync::mpsc::Receiver<Bytes> {
        self.flush();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut pieces: Vec<Option<Vec<Bytes>>> = vec![None; self.sources.len()];
            for part in self.parts {
                match part {
                    Part::Text(t) => {
                        if tx.send(t).await.is_err() {
                            return;
                        }
                    }
                    Part::Base64(k) => {
                        if let Some(done) = &pieces[k] {
                            for p in done {
                                if tx.send(p.clone()).await.is_err() {
                                    return;
                                }
                            }
                            continue;
                        }
                        let mut done = Vec::new();
                        for src in self.sources[k].chunks(PIECE) {
                            let p = Bytes::from(encode_base64(src));
                            done.push(p.clone());
                            if tx.send(p).await.is_err() {
                                return;
                            }
                        }
                        pieces[k] = Some(done);
                    }
                }
            }
        });
        rx
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
        let data = a.data.clone();
        out.array_form(Dtype::F64, &a.shape, data.clone());
        out.raw(",");
        out.array_form(Dtype::F64, &a.shape, data);
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

    /// Streamed, the same text, whatever the sizes (pieces and their
    /// last, padded one), with the length announced beforehand.
    #[tokio::test]
    async fn streamed_chunks_spell_the_same_text() {
        for n in [0usize, 5, SHARED_FROM, PIECE, PIECE + 1, PIECE * 3 + 2] {
            let bytes = Bytes::from((0..n).map(|i| (i * 13 + i / 7) as u8).collect::<Vec<u8>>());
            let write = || {
                let mut out = JsonChunks::new();
                out.raw("[");
                out.array_form(Dtype::U8, &[n], bytes.clone());
                out.raw(",");
                out.array_form(Dtype::U8, &[n], bytes.clone());
                out.raw("]");
                out
            };
            let eager: Vec<u8> = write().finish().concat();
            let mut streamed = write();
            let announced = streamed.len();
            let mut rx = streamed.stream();
            let mut text = Vec::new();
            while let Some(c) = rx.recv().await {
                text.extend_from_slice(&c);
            }
            assert_eq!(text.len(), announced, "length of {n}");
            assert!(text == eager, "the text of {n} bytes");
            let form = crate::value::ArrayForm { dtype: Dtype::U8, shape: vec![n], data: bytes.to_vec().into() }.to_json();
            assert_eq!(serde_json::from_slice::<Json>(&text).expect("json"), serde_json::json!([form, form]));
        }
    }
}
