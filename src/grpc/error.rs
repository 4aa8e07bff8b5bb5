//! Domain errors to gRPC status codes: every class decides its code here, with no
//! catch-all arm, and the message names the field as the HTTP body does.

use tonic::{Code, Status};

use crate::Error;

pub fn status_of(error: &Error) -> Code {
    match error {
        Error::ModelNotFound { .. }
        | Error::VersionNotFound { .. }
        | Error::AliasNotFound { .. }
        | Error::EntityNotFound { .. }
        | Error::StaleFeatures { .. }
        | Error::FeatureMissing { .. } => Code::NotFound,
        Error::InvalidInput { .. } | Error::TooManyRows { .. } => Code::InvalidArgument,
        Error::VersionUnavailable { .. } | Error::StoreUnavailable(_) => Code::Unavailable,
        Error::Timeout(_) => Code::DeadlineExceeded,
        Error::Overloaded { .. } => Code::ResourceExhausted,
        Error::Inference { .. } | Error::Registry(_) => Code::Internal,
        Error::RegistrySource(_) => Code::Unavailable,
        Error::VersionRefused { .. } | Error::AliasUnchanged { .. } | Error::NothingToRollBack { .. } => {
            Code::FailedPrecondition
        }
    }
}

pub fn to_status(error: &Error) -> Status {
    Status::new(status_of(error), error.to_string())
}
