//! What every listener does to its connections, whichever protocol it speaks: a cap on
//! open connections (one permit each, refused beyond it), a deadline for a new connection
//! to start talking, and the drain deadline at shutdown. The HTTP and gRPC transports
//! both serve through [`CappedIncoming`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;

/// Called for each connection closed for being over the cap (to count it).
pub type Refused = Box<dyn Fn() + Send + Sync>;

/// Limits on one listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections beyond this are closed as soon as they are accepted.
    pub max_connections: usize,
    /// HTTP/1: a request's headers must arrive within this, and an idle keep-alive
    /// connection waits this long for its next request. HTTP/2 (gRPC): the client's
    /// connection preface must arrive within this.
    pub header_read_timeout: Duration,
    /// HTTP/1: a request body must arrive whole within this.
    pub body_read_timeout: Duration,
    /// At shutdown, in-flight requests get this long to finish before connections close.
    pub drain_timeout: Duration,
}

/// Bytes an HTTP/2 client sends before anything else: the 24-byte preface and the 9-byte
/// header of its SETTINGS frame.
const HTTP2_OPENING: u64 = 24 + 9;

/// Accepted connections, each holding a permit of the listener's cap; those over the cap
/// are closed at once. Accept errors that are about one connection are skipped; others
/// (out of file descriptors) back off for a second rather than spin.
pub struct CappedIncoming {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// Bytes a connection must have sent within `opening_deadline` (0: no such check).
    opening_bytes: u64,
    opening_deadline: Duration,
    backoff: Option<Pin<Box<Sleep>>>,
    refused: Refused,
}

impl CappedIncoming {
    /// `refused` is called for each connection closed for being over the cap.
    pub fn new(listener: TcpListener, limits: &ConnectionLimits, refused: Refused) -> CappedIncoming {
        CappedIncoming {
            listener,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            opening_bytes: 0,
            opening_deadline: limits.header_read_timeout,
            backoff: None,
            refused,
        }
    }

    /// Closes a connection that has not sent an HTTP/2 connection preface within the
    /// header read timeout (HTTP/2 servers have no such timeout of their own).
    pub fn expect_http2_preface(mut self) -> CappedIncoming {
        self.opening_bytes = HTTP2_OPENING;
        self
    }

    /// The next connection within the cap (errors are handled inside: a listener's
    /// stream of connections does not end).
    pub async fn accept(&mut self) -> Capped {
        loop {
            if let Some(Ok(capped)) = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await {
                return capped;
            }
        }
    }
}

impl Stream for CappedIncoming {
    type Item = io::Result<Capped>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = this.backoff.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.backoff = None;
            }
            let stream = match ready!(this.listener.poll_accept(cx)) {
                Ok((stream, _)) => stream,
                Err(e) => {
                    let per_connection = matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                    );
                    if !per_connection {
                        tracing::error!("accept failed, retrying in 1 s: {e}");
                        this.backoff = Some(Box::pin(tokio::time::sleep(Duration::from_secs(1))));
                    }
                    continue;
                }
            };
            match Arc::clone(&this.permits).try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    let opening = (this.opening_bytes > 0).then(|| Opening {
                        needed: this.opening_bytes,
                        deadline: Box::pin(tokio::time::sleep_until(Instant::now() + this.opening_deadline)),
                    });
                    return Poll::Ready(Some(Ok(Capped { io: stream, _permit: permit, opening })));
                }
                // Dropping the stream closes it: the client sees the connection end.
                Err(_) => (this.refused)(),
            }
        }
    }
}

struct Opening {
    needed: u64,
    deadline: Pin<Box<Sleep>>,
}

/// An accepted connection; its permit is released when it closes.
pub struct Capped {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the opening bytes have arrived: how many are still needed, and by when.
    opening: Option<Opening>,
}

impl Capped {
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        self.io.peer_addr().ok()
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }
}

impl AsyncRead for Capped {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(opening) = this.opening.as_mut() {
            if let Poll::Ready(Ok(())) = polled {
                let read = (buf.filled().len() - before) as u64;
                opening.needed = opening.needed.saturating_sub(read);
                if opening.needed == 0 || read == 0 {
                    this.opening = None;
                }
                return polled;
            }
            if opening.deadline.as_mut().poll(cx).is_ready() {
                this.opening = None;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not open the connection within the header read timeout",
                )));
            }
        }
        polled
    }
}

impl AsyncWrite for Capped {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Capped {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Waits for `drain` up to `limit`; says whether it finished in time.
pub async fn drain_within(limit: Duration, drain: impl Future<Output = ()>) -> bool {
    tokio::time::timeout(limit, drain).await.is_ok()
}
