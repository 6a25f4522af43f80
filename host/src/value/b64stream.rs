//! Base64 decoded as it arrives: the text of a long JSON string is fed in
//! whatever pieces the network gives, whole 4-character blocks are decoded
//! at once (SIMD) into one buffer of 8-byte words, and the last block —
//! the only one that may carry padding — is decoded strictly when the
//! string ends. Used by `api/push_stream.rs` so that an 80 MB array form
//! is decoded while its body is still coming in.
//!
//! Invariants:
//! - A stream that finishes gives exactly the bytes the one-pass decoder
//!   (`base64` crate, standard alphabet, padded, canonical) gives for the
//!   whole text; any text that decoder refuses fails here (at `feed` or
//!   `finish`), never decodes to something else.
//! - Until it fails, the text fed so far can be given back exactly
//!   ([`StreamDecoder::text`]): decoded whole blocks re-encode to the very
//!   characters they came from.
//! - The buffer is words (`f64`), so a float64 array's bytes become its
//!   final `Vec<f64>` without a copy on little-endian hosts.

use base64::Engine as _;

/// Decoded bytes held in 8-byte words (little-endian order in memory).
pub struct Decoded {
    words: Vec<f64>,
    len: usize,
}

impl Decoded {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &super::array::f64s_as_bytes(&self.words)[..self.len]
    }

    /// The bytes as float64 items, without a copy on little-endian hosts;
    /// `None` unless they are a whole number of items.
    pub fn into_f64s(mut self) -> Option<Vec<f64>> {
        if !self.len.is_multiple_of(8) {
            return None;
        }
        self.words.truncate(self.len / 8);
        self.words.shrink_to_fit();
        #[cfg(not(target_endian = "little"))]
        let words: Vec<f64> = self.words.into_iter().map(|x| f64::from_bits(u64::from_le(x.to_bits()))).collect();
        #[cfg(target_endian = "little")]
        let words = self.words;
        Some(words)
    }

    /// The standard padded base64 of the bytes (what was sent).
    pub fn to_base64(&self) -> Vec<u8> {
        super::array::encode_base64(self.as_bytes())
    }
}

/// Feeds of base64 text in, [`Decoded`] out.
pub struct StreamDecoder {
    out: Decoded,
    /// Characters not decoded yet: always fewer than 8, and the last
    /// block is kept here until `finish`.
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder for at most `max_text` characters of text (the rest of
    /// the body): its buffer is sized for them, untouched until written.
    pub fn new(max_text: usize) -> StreamDecoder {
        let mut words = vec![0f64; (max_text / 4 * 3).div_ceil(8) + 1];
        crate::pages::advise_huge(&mut words);
        StreamDecoder { out: Decoded { words, len: 0 }, pending: Vec::with_capacity(8) }
    }

    /// Decodes what of `text` can be decoded now; `false` when the text
    /// cannot be valid base64, and then the decoder is as it was before
    /// the call (its [`StreamDecoder::text`] is what was fed before).
    pub fn feed(&mut self, text: &[u8]) -> bool {
        let (len, pending) = (self.out.len, self.pending.clone());
        if self.feed_blocks(text) {
            return true;
        }
        self.out.len = len;
        self.pending = pending;
        false
    }

    fn feed_blocks(&mut self, mut text: &[u8]) -> bool {
        // Complete the pending characters to whole blocks first.
        if !self.pending.is_empty() {
            let take = (8 - self.pending.len()).min(text.len());
            self.pending.extend_from_slice(&text[..take]);
            text = &text[take..];
            if self.pending.len() < 8 {
                return true;
            }
            // 8 characters and more to come or not: decode the first block,
            // keep the second (it may be the last).
            let first: [u8; 4] = [self.pending[0], self.pending[1], self.pending[2], self.pending[3]];
            if !self.decode_blocks(&first) {
                return false;
            }
            self.pending.drain(..4);
        }
        // Whole blocks straight from `text`, keeping at least one block
        // (and any partial one) back, together with what is pending.
        let keep = if text.len() < 4 { text.len() } else { text.len() % 4 + 4 };
        let (now, later) = text.split_at(text.len() - keep);
        if !now.is_empty() {
            // The pending block (4 characters) comes before `now`.
            if !self.pending.is_empty() {
                let block: [u8; 4] = [self.pending[0], self.pending[1], self.pending[2], self.pending[3]];
                if !self.decode_blocks(&block) {
                    return false;
                }
                self.pending.clear();
            }
            if !self.decode_blocks(now) {
                return false;
            }
        }
        self.pending.extend_from_slice(later);
        if self.pending.len() >= 8 {
            let block: Vec<u8> = self.pending.drain(..4).collect();
            return self.decode_blocks(&block);
        }
        true
    }

    fn decode_blocks(&mut self, blocks: &[u8]) -> bool {
        let n = blocks.len() / 4 * 3;
        let at = self.out.len;
        let Some(dst) = super::array::f64s_as_bytes_mut(&mut self.out.words).get_mut(at..at + n) else {
            return false;
        };
        let ok = base64_simd::STANDARD.decode(blocks, base64_simd::Out::from_slice(dst)).is_ok_and(|d| d.len() == n);
        self.out.len += n;
        ok
    }

    /// The text ended: decode the last block strictly. The decoder back,
    /// unchanged, when the whole text was not valid, canonical, padded
    /// base64.
    pub fn finish(mut self) -> Result<Decoded, StreamDecoder> {
        match self.pending.len() {
            0 => Ok(self.out),
            4 => {
                let mut tail = [0u8; 3];
                let Ok(n) = base64::engine::general_purpose::STANDARD.decode_slice(&self.pending, &mut tail) else { return Err(self) };
                let at = self.out.len;
                let Some(dst) = super::array::f64s_as_bytes_mut(&mut self.out.words).get_mut(at..at + n) else { return Err(self) };
                dst.copy_from_slice(&tail[..n]);
                self.out.len += n;
                Ok(self.out)
            }
            _ => Err(self),
        }
    }

    /// The text fed so far, exactly (valid only while every `feed` said
    /// `true`).
    pub fn text(&self) -> Vec<u8> {
        let mut t = super::array::encode_base64(self.out.as_bytes());
        t.extend_from_slice(&self.pending);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn fed(text: &[u8], piece: usize) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let mut d = StreamDecoder::new(text.len());
        let mut ok = true;
        let mut echoed = None;
        for p in text.chunks(piece.max(1)) {
            ok = ok && d.feed(p);
        }
        if ok {
            echoed = Some(d.text());
        }
        (ok.then(|| d.finish().ok()).flatten().map(|o| o.as_bytes().to_vec()), echoed)
    }

    #[test]
    fn any_pieces_decode_as_the_one_pass_decoder() {
        for len in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 100, 1000, 4099] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let text = STANDARD.encode(&bytes);
            for piece in [1, 2, 3, 4, 5, 7, 8, 9, 13, 64, 4096, 1 << 20] {
                let (got, echoed) = fed(text.as_bytes(), piece);
                assert_eq!(got.as_deref(), Some(&bytes[..]), "len {len}, pieces of {piece}");
                assert_eq!(echoed.as_deref(), Some(text.as_bytes()), "text given back, len {len}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn what_the_one_pass_decoder_refuses_fails() {
        let good = STANDARD.encode(vec![9u8; 300]);
        let mut cases: Vec<String> =
            ["QQ=", "QQ=A", "QR==", "A===", "QQ==QUFB", "QUFB\"", "QU FB", "QUF", "===="].map(String::from).to_vec();
        cases.push(format!("{}!", &good[..good.len() - 1]));
        cases.push(format!("{}*{}", &good[..100], &good[101..]));
        cases.push(good[..good.len() - 1].to_string());
        for text in &cases {
            assert!(STANDARD.decode(text).is_err(), "{text:?} is invalid");
            for piece in [1, 3, 4, 5, 8, 1000] {
                assert_eq!(fed(text.as_bytes(), piece).0, None, "{text:?} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn a_failed_feed_leaves_the_text_fed_before() {
        let good = STANDARD.encode(vec![3u8; 100]);
        let mut d = StreamDecoder::new(1000);
        assert!(d.feed(&good.as_bytes()[..50]));
        assert!(!d.feed(b"QUFB*QUFBQUFBQUFBQUFB"), "not base64");
        assert_eq!(d.text(), &good.as_bytes()[..50]);
        assert!(d.feed(&good.as_bytes()[50..]));
        let Err(d) = d.feed(b"QQ").then_some(d).expect("fed").finish() else { panic!("a partial block finished") };
        assert_eq!(d.text(), format!("{good}QQ").as_bytes());
    }

    #[test]
    fn float64_bytes_become_the_final_buffer() {
        let xs: Vec<f64> = (0..1000).map(|i| i as f64 * 0.25 - 7.0).collect();
        let text = STANDARD.encode(super::super::array::f64s_as_bytes(&xs));
        let mut d = StreamDecoder::new(text.len());
        assert!(text.as_bytes().chunks(333).all(|p| d.feed(p)));
        let out = d.finish().ok().expect("valid");
        assert_eq!(out.to_base64(), text.as_bytes());
        assert_eq!(out.into_f64s(), Some(xs));
    }
}
