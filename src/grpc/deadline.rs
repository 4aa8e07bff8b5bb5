//! The client's deadline on gRPC: the `grpc-timeout` header, read by the handlers to
//! budget the request. tonic enforces the same header itself, from the moment the request
//! arrives, by dropping the handler and answering CANCELLED. So the budget is counted from
//! that same moment ([`stamp`] records it, in an interceptor that tonic calls as it starts
//! its own timer) and ends [`MARGIN`] earlier: the core then answers DEADLINE_EXCEEDED
//! first, and says which stage it stopped before.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// How much earlier than the client's deadline the core gives up.
pub const MARGIN: Duration = Duration::from_millis(2);

/// When a request arrived (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// The interceptor that records a request's [`Arrival`].
pub fn stamp(mut request: Request<()>) -> Result<Request<()>, Status> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    Ok(request)
}

/// What is left of the request's budget: the client's `grpc-timeout` from its arrival,
/// less [`MARGIN`], if it sent one.
pub fn budget<T>(request: &Request<T>) -> Result<Option<Duration>, Status> {
    let Some(timeout) = grpc_timeout(request.metadata())? else { return Ok(None) };
    let spent = request.extensions().get::<Arrival>().map_or(Duration::ZERO, |a| a.0.elapsed());
    Ok(Some(timeout.saturating_sub(MARGIN).saturating_sub(spent)))
}

/// The `grpc-timeout` header: up to 8 digits and a unit (`H` hours, `M` minutes, `S`
/// seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds), as the gRPC over HTTP/2
/// protocol defines it.
pub fn grpc_timeout(metadata: &MetadataMap) -> Result<Option<Duration>, Status> {
    let Some(value) = metadata.get("grpc-timeout") else { return Ok(None) };
    let invalid =
        || Status::invalid_argument("grpc-timeout: expected up to 8 digits and a unit (H, M, S, m, u, n)");
    let text = value.to_str().map_err(|_| invalid())?;
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let timeout = match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(invalid()),
    };
    Ok(Some(timeout))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::metadata::MetadataMap;

    #[test]
    fn grpc_timeout_header() {
        let parse = |v: &str| {
            let mut m = MetadataMap::new();
            m.insert("grpc-timeout", v.parse().expect("ascii"));
            super::grpc_timeout(&m)
        };
        assert_eq!(parse("250m").ok(), Some(Some(Duration::from_millis(250))));
        assert_eq!(parse("2S").ok(), Some(Some(Duration::from_secs(2))));
        assert_eq!(parse("99999999H").ok(), Some(Some(Duration::from_secs(99_999_999 * 3600))));
        assert!(parse("123456789m").is_err());
        assert!(parse("m").is_err());
        assert!(parse("10x").is_err());
        assert_eq!(super::grpc_timeout(&MetadataMap::new()).ok(), Some(None));
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert("grpc-timeout", "1m".parse().expect("ascii"));
        assert_eq!(super::budget(&request).ok(), Some(Some(Duration::ZERO)));
    }
}
