//! Request ids: the caller's (checked) or one made here, the key of a prediction record.

use crate::Error;
use crate::registry::rollout::next_random;

/// The header (HTTP) and metadata key (gRPC) that carries it both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// What a caller's id must be, as errors say it.
pub const RULE: &str = "must be 1-128 printable ASCII characters without spaces";

/// A caller's id: 1-128 printable ASCII characters (no spaces), so it is safe in a header,
/// a log line and a file name.
pub fn check(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(REQUEST_ID_HEADER, RULE));
    }
    Ok(())
}

/// 128 random bits as 32 hex digits.
pub fn generate() -> String {
    format!("{:016x}{:016x}", next_random(), next_random())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_valid() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(check(&a).is_ok());
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!(check("").is_err());
        assert!(check("a b").is_err());
        assert!(check(&"x".repeat(129)).is_err());
        assert!(check("é").is_err());
        assert!(check("txn-42").is_ok());
    }
}
