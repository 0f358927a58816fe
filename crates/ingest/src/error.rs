//! What can go wrong between a front end and the queue, in kinds a front end
//! maps to its protocol's answer (retry later, refuse, or give up).

use model::DecodeError;
use queue::QueueError;

/// Why a request's events were not taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is readable in its framing but breaks a batch rule (not
    /// UTF-8, malformed JSON, too many events, no event at all).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The body is not a valid message of its protocol (bad protobuf, bad
    /// snappy, a JSON document of the wrong shape).
    #[error("{0}")]
    Malformed(String),
    /// A body decompresses to more than the decompressed-size limit.
    #[error("the decompressed body would take {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    /// The accepted events would take more than a queue record may hold.
    #[error("the events of this request would take more than {max} bytes; send fewer per request")]
    BatchTooLarge { max: usize },
    /// The queue refused or failed the append; nothing was acknowledged.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl IngestError {
    /// A body that is not a valid message of its protocol.
    pub fn malformed(message: impl Into<String>) -> IngestError {
        IngestError::Malformed(message.into())
    }

    /// Whether sending the same events again later may succeed: the queue
    /// was full, unreachable, shutting down or could not write.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IngestError::Queue(
                QueueError::Full { .. }
                    | QueueError::Closed
                    | QueueError::Io { .. }
                    | QueueError::Unavailable(_)
                    | QueueError::Unreachable(_)
            )
        )
    }
}
