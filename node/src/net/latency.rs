//! Simulated network latency for in-process drills: a wrapper around an
//! in-memory connection that hands each chunk of bytes to the reader only
//! `latency` after it arrived. Real transports never use it.

use futures::{AsyncRead, AsyncWrite};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// An in-memory connection whose incoming bytes arrive `latency` late.
pub(super) struct Delayed<S> {
    inner: S,
    latency: Duration,
    /// Chunks read from `inner`, with the time they may be delivered.
    queue: VecDeque<(Instant, Vec<u8>, usize)>,
    timer: Pin<Box<Sleep>>,
    eof: bool,
}

impl<S> std::fmt::Debug for Delayed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delayed({:?})", self.latency)
    }
}

impl<S> Delayed<S> {
    pub(super) fn new(inner: S, latency: Duration) -> Self {
        Self { inner, latency, queue: VecDeque::new(), timer: Box::pin(tokio::time::sleep(Duration::ZERO)), eof: false }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Delayed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.latency.is_zero() && this.queue.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Take in everything that has arrived, stamped with its delivery
        // time. `buf` is the scratch space (nothing is delivered into it
        // before this loop ends): no buffer allocated per poll, most of which
        // find nothing to read.
        while !this.eof {
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(n)) => {
                    this.queue.push_back((Instant::now() + this.latency, buf[..n].to_vec(), 0));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        let Some((due, chunk, pos)) = this.queue.front_mut() else {
            return if this.eof { Poll::Ready(Ok(0)) } else { Poll::Pending };
        };
        if Instant::now() < *due {
            this.timer.as_mut().reset(*due);
            return match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            };
        }
        let n = buf.len().min(chunk.len() - *pos);
        buf[..n].copy_from_slice(&chunk[*pos..*pos + n]);
        *pos += n;
        if *pos == chunk.len() {
            this.queue.pop_front();
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Delayed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncReadExt;

    #[tokio::test]
    async fn bytes_arrive_after_the_latency_and_intact() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut d = Delayed::new(futures::io::Cursor::new(data.clone()), Duration::from_millis(60));
        let t = std::time::Instant::now();
        let mut got = Vec::new();
        d.read_to_end(&mut got).await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(60), "{:?}", t.elapsed());
        assert_eq!(got, data);
        // Without latency nothing waits.
        let mut d = Delayed::new(futures::io::Cursor::new(vec![1u8; 10]), Duration::ZERO);
        let mut got = Vec::new();
        d.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [1u8; 10]);
    }
}
