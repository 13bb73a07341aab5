//! SDK errors onto the store's taxonomy; the SDK's types never leave the
//! backend.

use std::fmt;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::DynamoBackend;
use super::write::CONTENTION_ATTEMPTS;
use crate::error::{Error, ErrorKind};

/// Whether `e` is the service error `code`.
pub(super) fn is_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>, code: &str) -> bool {
    e.code() == Some(code)
}

/// A request that could not be built.
pub(super) fn internal(e: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("building a DynamoDB request: {e}"),
    )
}

/// A write that kept losing its condition to other writers.
pub(super) fn contended(id: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "session '{id}': gave up after {CONTENTION_ATTEMPTS} attempts, the session is written by too many writers at once"
        ),
    )
}

impl DynamoBackend {
    /// Map an SDK error onto the taxonomy; the SDK's types stay private.
    pub(super) fn sdk_err<E, R>(&self, op: &str, e: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let detail = DisplayErrorContext(&e).to_string();
        let (kind, what) = match &e {
            SdkError::TimeoutError(_) => (ErrorKind::Timeout, "timed out"),
            SdkError::DispatchFailure(d) if d.is_timeout() => (ErrorKind::Timeout, "timed out"),
            SdkError::DispatchFailure(_) => (ErrorKind::Unavailable, "cannot reach DynamoDB"),
            SdkError::ResponseError(_) => (ErrorKind::Unavailable, "unreadable response"),
            SdkError::ConstructionFailure(_) => (ErrorKind::Internal, "bad request"),
            SdkError::ServiceError(_) => match e.code().unwrap_or("") {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "LimitExceededException" => (ErrorKind::Unavailable, "throttled"),
                "InternalServerError" | "ServiceUnavailable" | "InternalFailure" => {
                    (ErrorKind::Unavailable, "server error")
                }
                "ResourceNotFoundException" => (ErrorKind::Unavailable, "table missing"),
                "UnrecognizedClientException"
                | "AccessDeniedException"
                | "InvalidSignatureException"
                | "MissingAuthenticationTokenException"
                | "ExpiredTokenException" => (ErrorKind::Unavailable, "credentials refused"),
                "ItemCollectionSizeLimitExceededException" => {
                    (ErrorKind::LimitExceeded, "item collection full")
                }
                "ValidationException"
                    if e.message()
                        .is_some_and(|m| m.to_ascii_lowercase().contains("size")) =>
                {
                    (ErrorKind::LimitExceeded, "item too large")
                }
                "ConditionalCheckFailedException"
                | "TransactionConflictException"
                | "TransactionInProgressException" => (ErrorKind::Conflict, "conflict"),
                _ => (ErrorKind::Backend, "error"),
            },
            _ => (ErrorKind::Backend, "error"),
        };
        Error::new(
            kind,
            format!("DynamoDB {op} on table {:?}: {what}: {detail}", self.table),
        )
        .with_source(e)
    }
}
