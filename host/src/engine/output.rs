//! Captured stdout/stderr of calls: bounded buffers the engine drains after
//! each call. Past the cap, writes still succeed (a task must not fail or
//! block because it printed too much) but are dropped and the truncation is
//! recorded, so it is marked in the output, never silent.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    cap: usize,
    dropped: usize,
}

#[derive(Clone)]
pub struct CapturedStream(Arc<Mutex<Buffer>>);

impl CapturedStream {
    pub fn new(cap: usize) -> Self {
        CapturedStream(Arc::new(Mutex::new(Buffer { data: Vec::new(), cap, dropped: 0 })))
    }

    fn append(&self, bytes: &[u8]) {
        let mut b = self.0.lock();
        let room = b.cap.saturating_sub(b.data.len());
        let take = room.min(bytes.len());
        b.data.extend_from_slice(&bytes[..take]);
        b.dropped += bytes.len() - take;
    }

    /// What was written since the last take, left in place.
    pub fn peek(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().data).into_owned()
    }

    /// Everything written since the last take, as text, with a marker when
    /// output was dropped.
    pub fn take(&self) -> String {
        let mut b = self.0.lock();
        let mut text = String::from_utf8_lossy(&b.data).into_owned();
        if b.dropped > 0 {
            text.push_str(&format!("\n[wasmpar: output truncated, {} more bytes dropped]\n", b.dropped));
        }
        b.data.clear();
        b.dropped = 0;
        text
    }
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_marked() {
        let s = CapturedStream::new(4);
        s.append(b"hello");
        let text = s.take();
        assert!(text.starts_with("hell"));
        assert!(text.contains("1 more bytes dropped"), "{text}");
        assert_eq!(s.take(), "");
    }
}
