//! A byte stream over a pair of message queues.
//!
//! The tokio drivers of this crate (and of the crates above it) run one task per connection
//! that owns the protocol state; users talk to it through queues of messages. [`Pipe`] turns
//! such a pair into an [`AsyncRead`] + [`AsyncWrite`] stream without extra tasks or copies:
//! reads hand out the received chunks in order, each write becomes one message of at most
//! `max` bytes, and backpressure is the outgoing queue's bound.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

type Wrap<T> = Box<dyn Fn(&[u8]) -> T + Send + Sync>;
type Reserve<T> = Pin<Box<dyn Future<Output = Option<mpsc::OwnedPermit<T>>> + Send>>;

/// A stream reading chunks from `rx` and writing messages built by `wrap` into `tx`.
pub struct Pipe<T: Send + 'static> {
    rx: mpsc::Receiver<Vec<u8>>,
    then: Option<mpsc::Receiver<Vec<u8>>>,
    guard: Option<Box<dyn std::any::Any + Send + Sync>>,
    chunk: Vec<u8>,
    at: usize,
    tx: Option<mpsc::Sender<T>>,
    reserve: Option<Reserve<T>>,
    wrap: Wrap<T>,
    max: usize,
    on_close: Option<T>,
}

impl<T: Send + 'static> Pipe<T> {
    /// Reads from `rx`; writes of at most `max` bytes go to `tx` as `wrap(bytes)`. On
    /// shutdown, or when dropped, `on_close` (if any) is queued, and `tx` let go.
    pub fn new(
        rx: mpsc::Receiver<Vec<u8>>,
        tx: mpsc::Sender<T>,
        wrap: impl Fn(&[u8]) -> T + Send + Sync + 'static,
        max: usize,
        on_close: Option<T>,
    ) -> Self {
        Self {
            rx,
            then: None,
            guard: None,
            chunk: Vec::new(),
            at: 0,
            tx: Some(tx),
            reserve: None,
            wrap: Box::new(wrap),
            max: max.max(1),
            on_close,
        }
    }

    /// Once `rx` has ended, reads go on from `then`.
    pub fn then_read(mut self, then: mpsc::Receiver<Vec<u8>>) -> Self {
        self.then = Some(then);
        self
    }

    /// Keeps `guard` alive as long as the pipe (e.g. the handle that keeps a driver running).
    pub fn keep(mut self, guard: impl std::any::Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// A permit to queue one message, or `None` once the other side is gone.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<Option<mpsc::OwnedPermit<T>>> {
        if self.reserve.is_none() {
            let Some(tx) = self.tx.clone() else {
                return Poll::Ready(None);
            };
            self.reserve = Some(Box::pin(async move { tx.reserve_owned().await.ok() }));
        }
        let fut = self.reserve.as_mut().expect("set just above");
        let permit = ready!(fut.as_mut().poll(cx));
        self.reserve = None;
        Poll::Ready(permit)
    }

    fn close(&mut self) {
        if let (Some(tx), Some(msg)) = (self.tx.take(), self.on_close.take()) {
            // Queue the close in the background when the queue is full.
            if let Err(mpsc::error::TrySendError::Full(msg)) = tx.try_send(msg) {
                tokio::spawn(async move {
                    let _ = tx.send(msg).await;
                });
            }
        }
        self.reserve = None;
    }
}

// Nothing in a pipe is pinned in place (the pending reservation is boxed).
impl<T: Send + 'static> Unpin for Pipe<T> {}

impl<T: Send + 'static> AsyncRead for Pipe<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.at >= this.chunk.len() {
            match ready!(this.rx.poll_recv(cx)) {
                Some(c) => {
                    this.chunk = c;
                    this.at = 0;
                }
                None => match this.then.take() {
                    Some(next) => this.rx = next,
                    // End of stream.
                    None => return Poll::Ready(Ok(())),
                },
            }
        }
        let n = buf.remaining().min(this.chunk.len() - this.at);
        buf.put_slice(&this.chunk[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl<T: Send + 'static> AsyncWrite for Pipe<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        let Some(permit) = ready!(this.poll_permit(cx)) else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let n = buf.len().min(this.max);
        permit.send((this.wrap)(&buf[..n]));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl<T: Send + 'static> Drop for Pipe<T> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_in_order_writes_bounded_close_once() {
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel::<(bool, Vec<u8>)>(2);
        let mut p = Pipe::new(
            in_rx,
            out_tx,
            |b| (false, b.to_vec()),
            3,
            Some((true, vec![])),
        );
        in_tx.send(b"hel".to_vec()).await.unwrap();
        in_tx.send(b"lo".to_vec()).await.unwrap();
        drop(in_tx);
        let mut s = String::new();
        p.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello");
        // Writes are cut at 3 bytes; the queue's bound holds the writer back.
        let w = tokio::spawn(async move {
            p.write_all(b"abcdefgh").await.unwrap();
            p.shutdown().await.unwrap();
            assert!(p.write_all(b"x").await.is_err(), "no writes after shutdown");
        });
        let mut got = Vec::new();
        while let Some((close, b)) = out_rx.recv().await {
            assert!(b.len() <= 3);
            got.extend(b);
            if close {
                break;
            }
        }
        assert_eq!(got, b"abcdefgh");
        w.await.unwrap();
        assert!(
            out_rx.recv().await.is_none(),
            "one close, then the queue is let go"
        );
    }
}
