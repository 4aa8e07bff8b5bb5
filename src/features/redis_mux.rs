//! Our own multiplexed Redis connection: what concurrent requests send is written together
//! and their replies are read back in order on one connection, as the redis crate's
//! multiplexed connection does, with a RESP reader written for the replies the store
//! asks for (arrays of bulk strings, simple strings, errors, integers). The crate parses
//! every reply with parser combinators, about a fifth of a request's instructions
//! (BENCHMARKS.md, "What one request costs in CPU").
//!
//! Who does the I/O: whoever holds the connection. A request that finds it free takes it,
//! writes its commands and whatever else has queued, reads until its own replies are in
//! (handing every earlier request its own on the way) and puts it back; alone, as most
//! requests are at a moderate rate, it never hands anything to another task, so its reply
//! is read where it waits, with no wake-up of another thread. A request that finds the
//! connection held queues its commands, tells the holder, and waits for its answer. A
//! holder that puts the connection back while others still wait wakes the connection's
//! task, which holds it until nothing is left, so under load every request is still one
//! write among many and one read. Every step keeps the connection whole if the request
//! holding it gives up (its deadline): what was written and read so far stays with the
//! connection, and the next holder carries on.
//!
//! When the connection fails (Redis restarted, a reset, a reply it cannot parse) every
//! request waiting on it gets the error and the connection is gone; the next request or
//! health check connects anew. AUTH (user and password) and SELECT as the URL says; TLS
//! (`rediss://`) with the given CA or the system's roots; Unix sockets.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::{ConnectionAddr, ConnectionInfo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};

/// The largest value, reply line and array accepted from Redis (a feature value is small;
/// an HMGET reply has one item per feature of a group).
const MAX_BULK: usize = 64 << 20;
const MAX_LINE: usize = 4096;
const MAX_ARRAY: usize = 1 << 16;

const CLOSED: &str = "the connection to Redis closed";

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Simple(Vec<u8>),
    /// `:N`.
    Int(i64),
    /// `$N`; `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*N` of bulk strings; `None` for `*-1`.
    Array(Option<Vec<Option<Vec<u8>>>>),
    /// `-ERR ...`: an answer, not a broken connection.
    Error(String),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Where a request's replies go.
type Answer = oneshot::Sender<Result<Vec<Reply>, String>>;
type Answered = oneshot::Receiver<Result<Vec<Reply>, String>>;

/// A request queued or written and not yet answered: how many replies it wants, those
/// read so far.
struct Waiting {
    wanted: usize,
    replies: Vec<Reply>,
    answer: Answer,
}

/// A line of a reply: its kind byte, its text without CRLF, where the next line starts.
type Line<'a> = (u8, &'a [u8], usize);

/// A bulk string's value (`None` for `$-1`) and where the next reply starts.
type Bulk = (Option<Vec<u8>>, usize);

/// The socket and what only its holder touches.
struct Conn {
    io: Pin<Box<dyn Io>>,
    /// Read and not yet parsed.
    input: Vec<u8>,
    /// To write; cleared once written and flushed.
    output: Vec<u8>,
    /// How much of `output` the socket has taken.
    written: usize,
    /// Written, in the order their replies come back.
    waiting: VecDeque<Waiting>,
}

struct State {
    /// `None` while a request or the connection's task holds it.
    conn: Option<Box<Conn>>,
    /// Commands no holder has taken yet, and who waits for their replies.
    queued: Vec<u8>,
    queued_waiting: Vec<Waiting>,
    /// Why the connection is gone; every later request is told.
    failed: Option<String>,
}

/// One connection, shared by every request that uses it and its task.
struct Shared {
    state: Mutex<State>,
    /// Work queued for whoever holds the connection now.
    for_holder: Notify,
    /// The connection was put back with work left, or has failed: for its task.
    for_task: Notify,
    closed: AtomicBool,
}

pub struct RedisMux {
    info: ConnectionInfo,
    tls: Option<tokio_rustls::TlsConnector>,
    connect_timeout: Duration,
    live: ArcSwapOption<Shared>,
    /// Held while connecting, so that a burst of requests opens one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl RedisMux {
    /// For `info` (TCP, TLS without `#insecure`, or a Unix socket); `None` when it names
    /// something only the redis crate's client speaks. Connects nothing yet.
    pub fn new(
        info: ConnectionInfo,
        ca_pem: Option<&[u8]>,
        connect_timeout: Duration,
    ) -> Result<Option<RedisMux>, String> {
        let tls = match info.addr() {
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_) => None,
            ConnectionAddr::TcpTls { insecure: false, .. } => Some(tls_connector(ca_pem)?),
            _ => return Ok(None),
        };
        Ok(Some(RedisMux {
            info,
            tls,
            connect_timeout,
            live: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
        }))
    }

    /// Sends `commands` (RESP, written by [`command`]), which produce `replies` replies,
    /// and returns them in order.
    pub async fn send(&self, commands: Vec<u8>, replies: usize) -> Result<Vec<Reply>, String> {
        if replies == 0 {
            return Ok(Vec::new());
        }
        let shared = self.live().await?;
        let (answer, mut answered) = oneshot::channel();
        let free = {
            let mut state = shared.lock();
            if let Some(error) = &state.failed {
                return Err(error.clone());
            }
            state.queued.extend_from_slice(&commands);
            state.queued_waiting.push(Waiting {
                wanted: replies,
                replies: Vec::with_capacity(replies),
                answer,
            });
            let free = state.conn.take();
            if free.is_none() {
                shared.for_holder.notify_one();
            }
            free
        };
        if let Some(conn) = free {
            let mut holder = Holder { shared: &shared, conn: Some(conn) };
            if let Some(result) = holder.lead(Some(&mut answered)).await {
                return result;
            }
        }
        answered.await.map_err(|_| CLOSED.to_string())?
    }

    /// Drops the connection (when health checks fail against a connection that neither
    /// answers nor fails): the next request connects anew.
    pub fn reset(&self) {
        if let Some(shared) = self.live.swap(None) {
            shared.fail(None, "the connection to Redis was reset".into());
        }
    }

    async fn live(&self) -> Result<Arc<Shared>, String> {
        if let Some(live) = self.live.load_full().filter(|l| !l.closed.load(Ordering::Acquire)) {
            return Ok(live);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(live) = self.live.load_full().filter(|l| !l.closed.load(Ordering::Acquire)) {
            return Ok(live);
        }
        let io = match tokio::time::timeout(self.connect_timeout, self.connect()).await {
            Ok(io) => io?,
            Err(_) => return Err(format!("no connection within {} ms", self.connect_timeout.as_millis())),
        };
        let conn = Box::new(Conn {
            io,
            input: Vec::with_capacity(16 * 1024),
            output: Vec::with_capacity(16 * 1024),
            written: 0,
            waiting: VecDeque::new(),
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                conn: Some(conn),
                queued: Vec::with_capacity(16 * 1024),
                queued_waiting: Vec::new(),
                failed: None,
            }),
            for_holder: Notify::new(),
            for_task: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(task(Arc::clone(&shared)));
        self.live.store(Some(Arc::clone(&shared)));
        Ok(shared)
    }

    /// Opens the socket and says who we are (AUTH, SELECT) before any request uses it.
    async fn connect(&self) -> Result<Pin<Box<dyn Io>>, String> {
        let text = |e: std::io::Error| e.to_string();
        let mut io: Pin<Box<dyn Io>> = match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(text)?;
                stream.set_nodelay(true).map_err(text)?;
                Box::pin(stream)
            }
            ConnectionAddr::TcpTls { host, port, .. } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(text)?;
                stream.set_nodelay(true).map_err(text)?;
                let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
                let tls = self.tls.as_ref().ok_or("no TLS configuration")?;
                Box::pin(tls.connect(name, stream).await.map_err(text)?)
            }
            ConnectionAddr::Unix(path) => {
                Box::pin(tokio::net::UnixStream::connect(path).await.map_err(text)?)
            }
            _ => return Err("an address kind this client does not speak".into()),
        };
        let settings = self.info.redis_settings();
        let mut hello = Vec::new();
        let mut expected = 0;
        if let Some(password) = settings.password() {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = settings.username() {
                auth.push(user.as_bytes());
            }
            auth.push(password.as_bytes());
            command(&mut hello, &auth);
            expected += 1;
        }
        let db = settings.db().to_string();
        if settings.db() != 0 {
            command(&mut hello, &[b"SELECT", db.as_bytes()]);
            expected += 1;
        }
        if expected > 0 {
            io.write_all(&hello).await.map_err(text)?;
            let mut buffer = Vec::new();
            let mut parsed = 0;
            while parsed < expected {
                if io.read_buf(&mut buffer).await.map_err(text)? == 0 {
                    return Err("Redis closed the connection while it was being set up".into());
                }
                while let Some((reply, used)) = parse(&buffer)? {
                    buffer.drain(..used);
                    parsed += 1;
                    match reply {
                        Reply::Simple(ok) if ok == b"OK" => {}
                        Reply::Error(message) => return Err(message),
                        other => return Err(format!("unexpected reply while connecting: {other:?}")),
                    }
                }
            }
        }
        Ok(io)
    }
}

impl Drop for RedisMux {
    fn drop(&mut self) {
        self.reset();
    }
}

/// The connection's task: holds the connection whenever it is put back with work left,
/// until nothing is left; ends when the connection fails or is dropped.
async fn task(shared: Arc<Shared>) {
    loop {
        shared.for_task.notified().await;
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let conn = shared.lock().conn.take();
        if let Some(conn) = conn {
            let mut holder = Holder { shared: &shared, conn: Some(conn) };
            holder.lead(None).await;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock still guards whole data.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection is gone: everyone waiting, queued or written, gets `error`; so does
    /// every later request, until a new connection replaces this one.
    fn fail(&self, held: Option<Box<Conn>>, error: String) {
        let mut state = self.lock();
        self.closed.store(true, Ordering::Release);
        let error = state.failed.get_or_insert(error).clone();
        let queued = std::mem::take(&mut state.queued_waiting);
        state.queued.clear();
        let free = state.conn.take();
        drop(state);
        let written = [held, free].into_iter().flatten().flat_map(|conn| conn.waiting);
        for waiting in queued.into_iter().chain(written) {
            let _ = waiting.answer.send(Err(error.clone()));
        }
        self.for_holder.notify_one();
        self.for_task.notify_one();
    }
}

/// Holds the connection; puts it back when dropped, even by a request that gave up.
struct Holder<'a> {
    shared: &'a Shared,
    conn: Option<Box<Conn>>,
}

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut state = self.shared.lock();
        if state.failed.is_some() {
            drop(state);
            self.shared.fail(Some(conn), CLOSED.into());
            return;
        }
        let left = !conn.waiting.is_empty() || !state.queued_waiting.is_empty() || !conn.output.is_empty();
        state.conn = Some(conn);
        drop(state);
        if left {
            self.shared.for_task.notify_one();
        }
    }
}

impl Holder<'_> {
    /// Writes what is queued and reads replies, handing each request its own, until
    /// `mine` is answered (a request) or nothing is left (the task, `mine` `None`).
    /// Returns `mine`'s answer; `None` when the connection failed (everyone waiting has
    /// been told) or, for the task, when it put the connection back.
    async fn lead(&mut self, mut mine: Option<&mut Answered>) -> Option<Result<Vec<Reply>, String>> {
        loop {
            let conn = self.conn.as_mut()?;
            {
                let mut state = self.shared.lock();
                if state.failed.is_some() {
                    drop(state);
                    self.shared.fail(self.conn.take(), CLOSED.into());
                    return None;
                }
                if !state.queued_waiting.is_empty() {
                    conn.output.extend_from_slice(&state.queued);
                    state.queued.clear();
                    conn.waiting.extend(state.queued_waiting.drain(..));
                } else if mine.is_none() && conn.waiting.is_empty() && conn.output.is_empty() {
                    state.conn = self.conn.take();
                    return None;
                }
            }
            // Raced against a wake-up, so that a reset reaches a holder whose writes Redis
            // does not take (the next turn sees it); a write cut short resumes there.
            let written = tokio::select! {
                biased;
                written = conn.write_out() => Some(written),
                () = self.shared.for_holder.notified() => None,
            };
            match written {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.shared.fail(self.conn.take(), e.to_string());
                    return None;
                }
                None => continue,
            }
            if let Some(answered) = mine.as_deref_mut() {
                match answered.try_recv() {
                    Ok(result) => return Some(result),
                    Err(oneshot::error::TryRecvError::Closed) => return Some(Err(CLOSED.into())),
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
            }
            let failure = tokio::select! {
                biased;
                read = conn.io.read_buf(&mut conn.input) => match read {
                    Ok(0) => Some("Redis closed the connection".to_string()),
                    Err(e) => Some(e.to_string()),
                    Ok(_) => deliver(&mut conn.input, &mut conn.waiting).err(),
                },
                () = self.shared.for_holder.notified() => None,
            };
            if let Some(error) = failure {
                self.shared.fail(self.conn.take(), error);
                return None;
            }
        }
    }
}

impl Conn {
    /// Writes and flushes `output`. Stopped part way (its holder gave up), what the
    /// socket took is counted, and the next holder writes the rest.
    async fn write_out(&mut self) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        while self.written < self.output.len() {
            let n = self.io.write(&self.output[self.written..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        // Flushing matters for TLS (records are cut there); on TCP it is free.
        self.io.flush().await?;
        self.output.clear();
        self.written = 0;
        Ok(())
    }
}

/// Parses every complete reply at the front of `input` and hands each request its own.
fn deliver(input: &mut Vec<u8>, waiting: &mut VecDeque<Waiting>) -> Result<(), String> {
    let mut at = 0;
    while let Some((reply, used)) = parse(&input[at..])? {
        at += used;
        let Some(front) = waiting.front_mut() else {
            return Err("Redis sent a reply nobody asked for".into());
        };
        front.replies.push(reply);
        if front.replies.len() == front.wanted
            && let Some(done) = waiting.pop_front()
        {
            let _ = done.answer.send(Ok(done.replies));
        }
    }
    input.drain(..at);
    Ok(())
}

/// Appends one command in RESP: an array of bulk strings.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", args.len());
    for arg in args {
        let _ = write!(out, "${}\r\n", arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The first complete reply in `input` and the bytes it took; `None` while it is
/// incomplete. A reply of a kind the store never asks for, or larger than the bounds, is
/// an error (the connection is then dropped).
pub fn parse(input: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some((kind, line, mut at)) = next_line(input, 0)? else { return Ok(None) };
    let reply = match kind {
        b'+' => Reply::Simple(line.to_vec()),
        b'-' => Reply::Error(String::from_utf8_lossy(line).into_owned()),
        b':' => Reply::Int(number(line)?),
        b'$' => match bulk(input, line, at)? {
            Some((value, end)) => {
                at = end;
                Reply::Bulk(value)
            }
            None => return Ok(None),
        },
        b'*' => {
            let count = number(line)?;
            if count < 0 {
                Reply::Array(None)
            } else {
                let count = usize::try_from(count).map_err(|e| e.to_string())?;
                if count > MAX_ARRAY {
                    return Err(format!("an array of {count} items from Redis, more than {MAX_ARRAY}"));
                }
                // Grown as items arrive, not reserved as declared.
                let mut items = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    let Some((kind, line, next)) = next_line(input, at)? else { return Ok(None) };
                    if kind != b'$' {
                        return Err(format!("an array item of kind {:?} from Redis", kind as char));
                    }
                    let Some((value, end)) = bulk(input, line, next)? else { return Ok(None) };
                    items.push(value);
                    at = end;
                }
                Reply::Array(Some(items))
            }
        }
        other => return Err(format!("a reply of kind {:?} from Redis", other as char)),
    };
    Ok(Some((reply, at)))
}

/// The line starting at `from`: its kind byte, its text without CRLF, and where the next
/// line starts.
fn next_line(input: &[u8], from: usize) -> Result<Option<Line<'_>>, String> {
    let rest = &input[from.min(input.len())..];
    let Some(end) = rest.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') else {
        if rest.len() > MAX_LINE + 2 {
            return Err(format!("a reply line from Redis longer than {MAX_LINE} bytes"));
        }
        return Ok(None);
    };
    if end < 2 || rest[end - 1] != b'\r' {
        return Err("a reply line from Redis without its kind or CRLF".into());
    }
    Ok(Some((rest[0], &rest[1..end - 1], from + end + 1)))
}

/// A bulk string whose header `line` ended at `at`: the value (`None` for `$-1`) and where
/// the next reply starts; `None` while incomplete.
fn bulk(input: &[u8], line: &[u8], at: usize) -> Result<Option<Bulk>, String> {
    let len = number(line)?;
    if len < 0 {
        return Ok(Some((None, at)));
    }
    let len = usize::try_from(len).map_err(|e| e.to_string())?;
    if len > MAX_BULK {
        return Err(format!("a value of {len} bytes from Redis, more than {MAX_BULK}"));
    }
    if input.len() < at + len + 2 {
        return Ok(None);
    }
    if &input[at + len..at + len + 2] != b"\r\n" {
        return Err("a value from Redis without its CRLF".into());
    }
    Ok(Some((Some(input[at..at + len].to_vec()), at + len + 2)))
}

fn number(digits: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(|| {
        format!("a length from Redis that is not a number: {:?}", String::from_utf8_lossy(digits))
    })
}

fn tls_connector(ca_pem: Option<&[u8]>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    // ring, whatever else the dependency tree enables: rustls refuses to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                roots.add(cert).map_err(|e| format!("CA file: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays() {
        let mut out = Vec::new();
        command(&mut out, &[b"HMGET", b"k", b"f1"]);
        assert_eq!(out, b"*3\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$2\r\nf1\r\n");
    }

    #[test]
    fn replies_parse_whole_or_wait_for_more() {
        let wire = b"*3\r\n$2\r\n12\r\n$-1\r\n$0\r\n\r\n+PONG\r\n-ERR wrong\r\n:7\r\n$3\r\nabc\r\n*-1\r\n";
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((reply, used)) = parse(&wire[at..]).expect("valid") {
            got.push(reply);
            at += used;
        }
        assert_eq!(at, wire.len());
        assert_eq!(
            got,
            vec![
                Reply::Array(Some(vec![Some(b"12".to_vec()), None, Some(Vec::new())])),
                Reply::Simple(b"PONG".to_vec()),
                Reply::Error("ERR wrong".into()),
                Reply::Int(7),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Array(None),
            ]
        );
        // Every cut short of the first reply's end waits for more.
        for cut in 0..23 {
            assert_eq!(parse(&wire[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn what_the_store_never_asks_for_is_refused() {
        assert!(parse(b"*1\r\n*0\r\n").is_err());
        assert!(parse(b"%1\r\n").is_err());
        assert!(parse(b"$99999999999\r\n").is_err());
        assert!(parse(b"*99999999999\r\n").is_err());
        assert!(parse(b"$x\r\n").is_err());
        assert!(parse(b"$2\r\nabXY").is_err());
        assert!(parse(b"+OK\n").is_err());
        assert!(parse(&[b'+'; MAX_LINE + 8]).is_err());
    }
}
