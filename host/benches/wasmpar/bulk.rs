//! A bare HTTP/1.1 client over one keep-alive `TcpStream`, for the bulk
//! rows: it writes a request body straight from the caller's buffer and
//! reads an answer straight into a reused one, so an 80 MB transfer times
//! the server and the loopback, not the client. (reqwest's blocking client
//! moves each body through its own chunks and a channel: it read the raw
//! pull at ~1.5 GB/s where curl read the same answer at ~4 GB/s.)
//!
//! Invariants: one request at a time on the connection; an answer is read
//! in full (`Content-Length` or chunked) before the next request is sent,
//! so the connection stays usable; anything else it does not understand
//! is a panic, which fails the bench run loudly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

pub struct Bulk {
    reader: BufReader<TcpStream>,
    host: String,
    token: String,
}

impl Bulk {
    /// Connects to `url` (`http://127.0.0.1:PORT`).
    pub fn connect(url: &str, token: &str) -> Bulk {
        let host = url.trim_start_matches("http://").trim_end_matches('/').to_string();
        let stream = TcpStream::connect(&host).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Bulk { reader: BufReader::with_capacity(1 << 16, stream), host, token: token.to_string() }
    }

    /// Sends one request with `body` (none when empty) and `headers`
    /// (`"name: value"`), reads the answer's body into `out[..n]` (growing
    /// `out` only when it is too short, so a reused buffer is not written
    /// twice), and answers (status, n).
    pub fn request(&mut self, method: &str, path: &str, headers: &[&str], body: &[u8], out: &mut Vec<u8>) -> (u16, usize) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n", self.host, self.token);
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(body).expect("write body");
        self.read_answer(out)
    }

    fn read_answer(&mut self, out: &mut Vec<u8>) -> (u16, usize) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line {line:?}"));
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or_else(|| panic!("header {h:?}"));
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().expect("content-length"));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        if !chunked {
            let n = length.expect("an answer with neither Content-Length nor chunked");
            self.read_into(out, 0, n);
            return (status, n);
        }
        let mut n = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("chunk size");
            let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16).expect("chunk size");
            if size > 0 {
                self.read_into(out, n, size);
                n += size;
            }
            line.clear();
            self.reader.read_line(&mut line).expect("chunk end");
            if size == 0 {
                return (status, n);
            }
        }
    }

    /// Reads exactly `len` bytes into `out[at..at + len]` (large reads skip
    /// the `BufReader`'s buffer once it is empty).
    fn read_into(&mut self, out: &mut Vec<u8>, at: usize, len: usize) {
        if out.len() < at + len {
            out.resize(at + len, 0);
        }
        self.reader.read_exact(&mut out[at..at + len]).expect("body");
    }
}
