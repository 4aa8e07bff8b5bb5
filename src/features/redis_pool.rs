//! A pool of Redis connections that each request uses on its own task: it takes an idle
//! connection (or opens one), writes its whole pipeline of HMGETs, reads the replies and
//! puts the connection back. No hand-off to a driver task and back, which the multiplexed
//! client costs every request (BENCHMARKS.md, "Where the time of one request goes").
//!
//! A connection whose exchange did not finish (an error, the deadline, a dropped request)
//! is dropped with it, never reused half-read; the next request opens a fresh one, which is
//! also how the pool reconnects after Redis restarts. AUTH (user and password), SELECT and
//! TLS (`rediss://`, the given CA or the system's roots) as the URL says.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use redis::{ConnectionAddr, ConnectionInfo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Idle connections kept for reuse; a burst opens more, the extra are closed after use.
const MAX_IDLE: usize = 64;
/// The largest reply line and value accepted from Redis (a feature value is small).
const MAX_LINE: usize = 1024;
const MAX_BULK: usize = 64 << 20;
const MAX_ARRAY: usize = 1 << 20;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

struct Conn {
    io: BufReader<Pin<Box<dyn Io>>>,
    line: Vec<u8>,
}

pub struct RedisPool {
    info: ConnectionInfo,
    tls: Option<tokio_rustls::TlsConnector>,
    idle: Mutex<Vec<Conn>>,
}

/// One reply to an HMGET: `None` per field that is absent.
pub type Fields = Vec<Option<Vec<u8>>>;

impl RedisPool {
    /// Plain TCP, TLS or a Unix socket, as `info` says; `ca_pem` replaces the system's
    /// roots for TLS.
    pub fn new(info: ConnectionInfo, ca_pem: Option<&[u8]>) -> Result<RedisPool, String> {
        let tls = match info.addr() {
            ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err("`#insecure` TLS is not supported by the pooled client".into());
            }
            ConnectionAddr::TcpTls { .. } => Some(tls_connector(ca_pem)?),
            _ => None,
        };
        Ok(RedisPool { info, tls, idle: Mutex::new(Vec::new()) })
    }

    /// Runs `HMGET key fields...` for each lookup in one round trip.
    pub async fn hmget(&self, lookups: &[(&[u8], &[Vec<u8>])]) -> Result<Vec<Fields>, String> {
        let mut request = Vec::with_capacity(64 * lookups.len());
        for (key, fields) in lookups {
            command(&mut request, std::iter::once(&b"HMGET"[..]).chain([*key]).chain(fields.iter().map(Vec::as_slice)));
        }
        let mut conn = self.take().await?;
        conn.io.get_mut().write_all(&request).await.map_err(|e| e.to_string())?;
        conn.io.get_mut().flush().await.map_err(|e| e.to_string())?;
        let mut replies = Vec::with_capacity(lookups.len());
        for _ in lookups {
            replies.push(conn.read_fields().await?);
        }
        self.give_back(conn);
        Ok(replies)
    }

    /// `PING` on a pooled connection.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.take().await?;
        let mut request = Vec::new();
        command(&mut request, [&b"PING"[..]].into_iter());
        conn.io.get_mut().write_all(&request).await.map_err(|e| e.to_string())?;
        conn.io.get_mut().flush().await.map_err(|e| e.to_string())?;
        match conn.read_line().await?.as_slice() {
            b"+PONG" => {
                self.give_back(conn);
                Ok(())
            }
            other => Err(format!("PING answered {:?}", String::from_utf8_lossy(other))),
        }
    }

    async fn take(&self) -> Result<Conn, String> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect().await,
        }
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let io: Pin<Box<dyn Io>> = match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                Box::pin(stream)
            }
            ConnectionAddr::TcpTls { host, port, .. } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
                let Some(tls) = &self.tls else { return Err("no TLS configuration".into()) };
                Box::pin(tls.connect(name, stream).await.map_err(|e| e.to_string())?)
            }
            ConnectionAddr::Unix(path) => {
                Box::pin(tokio::net::UnixStream::connect(path).await.map_err(|e| e.to_string())?)
            }
            _ => return Err("an address kind the pooled client does not support".into()),
        };
        let mut conn = Conn { io: BufReader::new(io), line: Vec::new() };
        let settings = self.info.redis_settings();
        let mut hello = Vec::new();
        let mut expected = 0;
        if let Some(password) = settings.password() {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = settings.username() {
                auth.push(user.as_bytes());
            }
            auth.push(password.as_bytes());
            command(&mut hello, auth.into_iter());
            expected += 1;
        }
        let db = settings.db().to_string();
        if settings.db() != 0 {
            command(&mut hello, [&b"SELECT"[..], db.as_bytes()].into_iter());
            expected += 1;
        }
        if expected > 0 {
            conn.io.get_mut().write_all(&hello).await.map_err(|e| e.to_string())?;
            conn.io.get_mut().flush().await.map_err(|e| e.to_string())?;
            for _ in 0..expected {
                let line = conn.read_line().await?;
                if line != b"+OK" {
                    return Err(format!("connecting: {}", String::from_utf8_lossy(&line)));
                }
            }
        }
        Ok(conn)
    }
}

/// Appends one command in RESP (an array of bulk strings).
fn command<'a>(out: &mut Vec<u8>, args: impl Iterator<Item = &'a [u8]> + Clone) {
    out.push(b'*');
    out.extend_from_slice(args.clone().count().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

impl Conn {
    /// One reply line without its CRLF (an error reply becomes `Err`).
    async fn read_line(&mut self) -> Result<Vec<u8>, String> {
        self.line.clear();
        let n = (&mut self.io).take(MAX_LINE as u64).read_until(b'\n', &mut self.line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed by Redis".into());
        }
        if !self.line.ends_with(b"\r\n") {
            return Err("reply line too long or cut short".into());
        }
        self.line.truncate(self.line.len() - 2);
        if let Some(message) = self.line.strip_prefix(b"-") {
            return Err(String::from_utf8_lossy(message).into_owned());
        }
        Ok(self.line.clone())
    }

    /// An HMGET reply: an array of bulk strings, `$-1` for an absent field.
    async fn read_fields(&mut self) -> Result<Fields, String> {
        let header = self.read_line().await?;
        let count = length(&header, b'*', MAX_ARRAY)?.ok_or("HMGET answered a null array")?;
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let header = self.read_line().await?;
            fields.push(match length(&header, b'$', MAX_BULK)? {
                None => None,
                Some(len) => {
                    let mut value = vec![0; len + 2];
                    self.io.read_exact(&mut value).await.map_err(|e| e.to_string())?;
                    if !value.ends_with(b"\r\n") {
                        return Err("a value without its CRLF".into());
                    }
                    value.truncate(len);
                    Some(value)
                }
            });
        }
        Ok(fields)
    }
}

/// The length in a `*N` / `$N` header (`None` for -1), at most `max`.
fn length(header: &[u8], kind: u8, max: usize) -> Result<Option<usize>, String> {
    let bad = || format!("unexpected reply {:?}", String::from_utf8_lossy(header));
    let digits = header.strip_prefix(&[kind]).ok_or_else(bad)?;
    if digits == b"-1" {
        return Ok(None);
    }
    let n: usize = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(bad)?;
    if n > max {
        return Err(format!("a reply of {n} items or bytes, more than {max}"));
    }
    Ok(Some(n))
}

fn tls_connector(ca_pem: Option<&[u8]>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.map_err(|e| format!("CA file: {e}"))?).map_err(|e| format!("CA file: {e}"))?;
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
        command(&mut out, [&b"HMGET"[..], b"k", b"f1"].into_iter());
        assert_eq!(out, b"*3\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$2\r\nf1\r\n");
    }

    #[test]
    fn lengths_are_bounded() {
        assert_eq!(length(b"*2", b'*', 10), Ok(Some(2)));
        assert_eq!(length(b"$-1", b'$', 10), Ok(None));
        assert!(length(b"$11", b'$', 10).is_err());
        assert!(length(b"+OK", b'$', 10).is_err());
        assert!(length(b"*x", b'*', 10).is_err());
    }
}
