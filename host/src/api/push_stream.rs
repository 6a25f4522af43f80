//! The body of `PUT /v1/namespace` decoded while it arrives. An 80 MB
//! float64 array form is a 107 MB base64 string; reading the body whole and
//! then letting serde_json scan that string and base64 decode it took three
//! passes after the last byte came. Here every chunk is looked at once, as
//! it arrives: outside long strings its bytes are kept (the *compact* body);
//! a string without escapes that grows past [`LONG`] bytes is fed to a
//! [`StreamDecoder`] instead and, once it ends, stands in the compact body
//! as a marker: `"\u0000<nonce>:<k>"`, the nonce random per request. The
//! compact body is then parsed as `push_body::PushBody`, and each array
//! form whose `data` is a marker gets the bytes decoded for it.
//!
//! Invariants:
//! - Whatever the client sent means exactly what it means read whole: a
//!   long string that turns out not to be base64 is given back as the text
//!   it was (decoded blocks re-encode to the same characters) and kept; a
//!   body whose markers are not each the `data` of one pushed form, or
//!   that does not parse, is rebuilt byte for byte ([`Streamed::original`])
//!   for the general path and its errors.
//! - A marker cannot be confused with a client's string: the client cannot
//!   know the nonce, and the only way to send a U+0000 is an escape, which
//!   is never inside a long string we decoded.
//! - Bodies without a `Content-Length`, over the limit or shorter than
//!   [`LONG`] are read whole (`body::read_bytes`, with its 413).

use axum::extract::Request;
use bytes::Bytes;
use futures::StreamExt;

use super::body::{content_length, read_bytes};
use super::error::ApiError;
use super::push_body::{Decoded as PushValues, PushBody, PushItem};
use crate::engine::NsValue;
use crate::scheduler::Targets;
use crate::value::b64stream::{Decoded, StreamDecoder};
use crate::Error;

/// A string this long (in bytes, without escapes) is decoded as it comes.
pub const LONG: usize = 1 << 20;

/// A push body as read: the compact text and the long strings decoded.
pub struct Streamed {
    compact: Bytes,
    longs: Vec<Long>,
    nonce: String,
}

/// One long string: where its marker stands in the compact body (from the
/// byte after the opening quote), and its bytes.
struct Long {
    at: usize,
    marker_len: usize,
    bytes: Decoded,
}

/// Reads a push body, decoding long strings as they arrive.
pub async fn read(req: Request, limit: usize) -> Result<Streamed, ApiError> {
    let Some(len) = content_length(&req).filter(|&n| n <= limit && n >= LONG) else {
        return Ok(Streamed { compact: read_bytes(req, limit).await?, longs: Vec::new(), nonce: String::new() });
    };
    let mut scan = Scan::new(len, LONG);
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(Error::BadRequest(format!("cannot read the request body: {e}"))))?;
        if scan.seen + chunk.len() > len {
            return Err(ApiError(Error::BadRequest("the body is longer than its Content-Length".into())));
        }
        scan.feed(&chunk);
    }
    if scan.seen != len {
        return Err(ApiError(Error::BadRequest(format!("the body ended after {} of {len} bytes", scan.seen))));
    }
    Ok(scan.end())
}

impl Streamed {
    /// The targets and the values by name, each decoded (or why not) as
    /// the whole body would have been; `Err` with the body as sent when
    /// it has to go the general way.
    pub fn into_values(self) -> Result<(Targets, PushValues), Bytes> {
        if self.longs.is_empty() {
            return Err(self.compact);
        }
        let compact = self.compact.clone();
        let Ok(body) = serde_json::from_slice::<PushBody>(&compact) else { return Err(self.original()) };
        // Every marker must be the `data` of exactly one pushed form.
        let mut used = vec![false; self.longs.len()];
        for item in body.values.values() {
            if let PushItem::Form { data, .. } = item {
                if let Some(k) = self.marker_index(data) {
                    used[k] = true;
                }
            }
        }
        if used.iter().any(|u| !u) {
            return Err(self.original());
        }
        let nonce = self.nonce.clone();
        let mut bytes: Vec<Option<Decoded>> = self.longs.into_iter().map(|l| Some(l.bytes)).collect();
        let targets = body.targets;
        let values = body
            .values
            .into_iter()
            .map(|(name, item)| {
                let value = match item {
                    PushItem::Form { fields, data } => match marker_of(&nonce, &data).and_then(|k| bytes.get_mut(k)?.take()) {
                        Some(b) => NsValue::from_form_decoded(fields, b),
                        None => NsValue::from_form_parts(fields, data),
                    },
                    PushItem::Value(v) => NsValue::from_json(&v),
                };
                (name.into_owned(), value)
            })
            .collect();
        Ok((targets, values))
    }

    fn marker_index(&self, data: &str) -> Option<usize> {
        marker_of(&self.nonce, data).filter(|&k| k < self.longs.len())
    }

    /// The body byte for byte as the client sent it.
    fn original(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.compact.len() + self.longs.iter().map(|l| l.bytes.len() / 3 * 4 + 4).sum::<usize>());
        crate::pages::advise_huge_spare(out.spare_capacity_mut());
        let mut from = 0;
        for l in &self.longs {
            out.extend_from_slice(&self.compact[from..l.at]);
            out.extend_from_slice(&l.bytes.to_base64());
            from = l.at + l.marker_len;
        }
        out.extend_from_slice(&self.compact[from..]);
        out.into()
    }
}

/// `k` when `data` is the marker `\0<nonce>:<k>`.
fn marker_of(nonce: &str, data: &str) -> Option<usize> {
    let rest = data.strip_prefix('\0')?.strip_prefix(nonce)?.strip_prefix(':')?;
    if nonce.is_empty() || rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

enum State {
    /// Between strings.
    Outside,
    /// In a string kept in the compact body, from `start`; `escape` when
    /// the next byte is escaped; `short` once it can no longer be long
    /// (it has an escape, or it was not base64).
    Text { start: usize, escape: bool, short: bool },
    /// In a long string, fed to the decoder.
    Long { dec: Box<StreamDecoder>, at: usize },
}

struct Scan {
    compact: Vec<u8>,
    longs: Vec<Long>,
    state: State,
    nonce: String,
    /// The body's declared length, and how much of it came so far.
    len: usize,
    seen: usize,
    long_from: usize,
}

impl Scan {
    fn new(len: usize, long_from: usize) -> Scan {
        let mut compact = Vec::with_capacity(len.min(64 << 20));
        crate::pages::advise_huge_spare(compact.spare_capacity_mut());
        Scan {
            compact,
            longs: Vec::new(),
            state: State::Outside,
            nonce: format!("{:032x}", rand::random::<u128>()),
            len,
            seen: 0,
            long_from,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while !rest.is_empty() {
            rest = self.step(rest);
        }
        self.seen += chunk.len();
    }

    /// Takes what it can of `rest` in the current state; answers the rest.
    fn step<'a>(&mut self, rest: &'a [u8]) -> &'a [u8] {
        match &mut self.state {
            State::Outside => match memchr::memchr(b'"', rest) {
                Some(i) => {
                    self.compact.extend_from_slice(&rest[..=i]);
                    self.state = State::Text { start: self.compact.len(), escape: false, short: false };
                    &rest[i + 1..]
                }
                None => {
                    self.compact.extend_from_slice(rest);
                    &[]
                }
            },
            State::Text { escape: escape @ true, .. } => {
                *escape = false;
                self.compact.push(rest[0]);
                &rest[1..]
            }
            State::Text { start, escape, short } => {
                let start = *start;
                let left = match memchr::memchr2(b'"', b'\\', rest) {
                    Some(i) if rest[i] == b'"' => {
                        if !*short && self.compact.len() - start + i >= self.long_from {
                            // A long string seen whole in one chunk: the
                            // decoder takes it, and the quote ends it there.
                            self.compact.extend_from_slice(&rest[..i]);
                            self.promote(start, i);
                            return &rest[i..];
                        }
                        self.compact.extend_from_slice(&rest[..=i]);
                        self.state = State::Outside;
                        return &rest[i + 1..];
                    }
                    Some(i) => {
                        self.compact.extend_from_slice(&rest[..=i]);
                        (*escape, *short) = (true, true);
                        &rest[i + 1..]
                    }
                    None => {
                        self.compact.extend_from_slice(rest);
                        &[][..]
                    }
                };
                if !*short && self.compact.len() - start >= self.long_from {
                    self.promote(start, rest.len() - left.len());
                }
                left
            }
            State::Long { dec, at } => {
                let at = *at;
                let stop = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                if !dec.feed(&rest[..stop]) {
                    self.demote(at);
                    return rest;
                }
                let rest = &rest[stop..];
                match rest.first() {
                    None => rest,
                    Some(b'"') => {
                        let State::Long { dec, .. } = std::mem::replace(&mut self.state, State::Outside) else { return rest };
                        match dec.finish() {
                            Ok(bytes) => {
                                let marker = format!("\\u0000{}:{}", self.nonce, self.longs.len());
                                self.compact.extend_from_slice(marker.as_bytes());
                                self.longs.push(Long { at, marker_len: marker.len(), bytes });
                                self.compact.push(b'"');
                                &rest[1..]
                            }
                            Err(dec) => {
                                self.state = State::Long { dec: Box::new(dec), at };
                                self.demote(at);
                                rest
                            }
                        }
                    }
                    // An escape: not base64, so an ordinary string.
                    Some(_) => {
                        self.demote(at);
                        rest
                    }
                }
            }
        }
    }

    /// The string from `start` is long: its text so far goes to a decoder
    /// (sized for the rest of the body) instead of the compact body.
    /// `taken` bytes of the current chunk are already in the compact body.
    fn promote(&mut self, start: usize, taken: usize) {
        let prefix = self.compact.split_off(start);
        let max_text = prefix.len() + self.len.saturating_sub(self.seen + taken);
        let mut dec = Box::new(StreamDecoder::new(max_text));
        if dec.feed(&prefix) {
            self.state = State::Long { dec, at: start };
        } else {
            self.compact.extend_from_slice(&prefix);
            self.state = State::Text { start, escape: false, short: true };
        }
    }

    /// The long string from `at` is not base64 after all: its text goes
    /// back into the compact body, and it is read as an ordinary string.
    fn demote(&mut self, at: usize) {
        if let State::Long { dec, .. } = &self.state {
            let text = dec.text();
            self.compact.extend_from_slice(&text);
        }
        self.state = State::Text { start: at, escape: false, short: true };
    }

    fn end(mut self) -> Streamed {
        if let State::Long { at, .. } = self.state {
            // An unterminated string: the body is broken; keep it as sent.
            self.demote(at);
        }
        Streamed { compact: Bytes::from(self.compact), longs: self.longs, nonce: self.nonce }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn scanned(body: &[u8], piece: usize, long_from: usize) -> Streamed {
        let mut scan = Scan::new(body.len(), long_from);
        for p in body.chunks(piece.max(1)) {
            scan.feed(p);
        }
        scan.end()
    }

    /// What the route does with the bytes read whole (the general path).
    fn whole(body: &[u8]) -> Result<PushValues, String> {
        match serde_json::from_slice::<PushBody>(body) {
            Ok(b) => Ok(b.into_parts().1),
            Err(e) => Err(e.to_string()),
        }
    }

    fn via_stream(body: &[u8], piece: usize, long_from: usize) -> (Result<PushValues, String>, bool) {
        let s = scanned(body, piece, long_from);
        match s.into_values() {
            Ok((_, values)) => (Ok(values), true),
            Err(original) => {
                assert_eq!(&original[..], body, "the body rebuilt as sent");
                (whole(&original), false)
            }
        }
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn any_body_means_what_it_means_read_whole() {
        let floats: Vec<u8> = (0..600).flat_map(|i| (i as f64 * 0.5).to_le_bytes()).collect();
        let ints: Vec<u8> = (0..333i32).flat_map(|i| (i * -3).to_le_bytes()).collect();
        let f = b64(&floats);
        let i = b64(&ints);
        let text = "plain text, long enough to be looked at as a long string ".repeat(30);
        let cases: Vec<(String, bool)> = vec![
            // The bulk case: decoded as it came.
            (format!(r#"{{"values": {{"big": {{"dtype": "float64", "shape": [600], "data": "{f}"}}}}}}"#), true),
            (format!(r#"{{"targets": [0], "values": {{"a": {{"data": "{f}", "dtype": "float64", "shape": [20, 30]}}, "b": 3}}}}"#), true),
            (format!(r#"{{"values": {{"i": {{"dtype": "int32", "data": "{i}"}}, "f": {{"dtype": "float64", "data": "{f}"}}}}}}"#), true),
            // Wrong shape, odd bytes, unknown dtype: the same errors.
            (format!(r#"{{"values": {{"big": {{"dtype": "float64", "shape": [7], "data": "{f}"}}}}}}"#), true),
            (format!(r#"{{"values": {{"i": {{"dtype": "float64", "data": "{i}"}}}}}}"#), true),
            (format!(r#"{{"values": {{"i": {{"dtype": "float99", "data": "{f}"}}}}}}"#), true),
            (format!(r#"{{"values": {{"x": {{"data": "{f}", "note": 1}}}}}}"#), true),
            // Long strings that are no form's data: read whole.
            (format!(r#"{{"values": {{"s": "{f}"}}}}"#), false),
            (format!(r#"{{"values": {{"n": {{"x": {{"dtype": "float64", "data": "{f}"}}}}}}}}"#), false),
            (format!(r#"{{"values": {{"d": {{"dtype": "float64", "data": "{i}", "data": "{f}"}}}}}}"#), false),
            (format!(r#"{{"values": {{"t": "{text}", "big": {{"dtype": "float64", "data": "{f}"}}}}}}"#), true),
            // Not base64, escapes, a broken last block, broken bodies.
            (format!(r#"{{"values": {{"t": {{"data": "{text}"}}}}}}"#), false),
            (format!(r#"{{"values": {{"e": {{"dtype": "float64", "data": "{}\"{}"}}}}}}"#, &f[..500], &f[500..]), false),
            (format!(r#"{{"values": {{"p": {{"dtype": "float64", "data": "{}A==="}}}}}}"#, &f[..f.len() - 4]), false),
            (format!(r#"{{"values": {{"big": {{"dtype": "float64", "data": "{f}"}}}}"#), false),
            (format!(r#"{{"values": {{"big": {{"dtype": "float64", "data": "{f}"#), false),
            (format!(r#"{{"values": {{"big": {{"dtype": "float64", "data": "{f}"}}}}, "extra": 1}}"#), false),
            // A client's string shaped like a marker is just a string.
            (r#"{"values": {"m": {"dtype": "float64", "data": "\u0000abc:0"}}}"#.to_string(), false),
        ];
        for (body, streamed) in &cases {
            let want = whole(body.as_bytes());
            for piece in [1, 3, 64, 1000, 1 << 20] {
                let (got, was_streamed) = via_stream(body.as_bytes(), piece, 256);
                assert_eq!(format!("{got:?}"), format!("{want:?}"), "{} in pieces of {piece}", &body[..body.len().min(80)]);
                assert_eq!(was_streamed, *streamed, "{} in pieces of {piece}: streamed?", &body[..body.len().min(80)]);
            }
        }
    }

    #[test]
    fn the_long_string_is_not_kept_in_the_compact_body() {
        let f = b64(&vec![7u8; 30_000]);
        let body = format!(r#"{{"values": {{"big": {{"dtype": "uint8", "data": "{f}"}}}}}}"#);
        let s = scanned(body.as_bytes(), 4096, 1024);
        assert!(s.compact.len() < 200, "compact body of {} bytes", s.compact.len());
        assert_eq!(&s.original()[..], body.as_bytes());
    }
}
