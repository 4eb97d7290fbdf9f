//! The one binary encoding of the model: MessagePack with named fields.
//!
//! Whatever the project keeps or sends as *model bytes* — history events,
//! commands, failures, outcomes and options in stored rows, and the large enums
//! carried as bytes inside the gRPC messages — is encoded here, so a stored row
//! and a message use the same spelling. Named fields (not positions) keep the
//! encoding self-describing: a field added later (with a serde default) reads
//! old bytes, and a reader can report which field is wrong. Payload bytes are
//! MessagePack `bin` values, never lists of integers (see
//! [`Payload`](crate::Payload)).
//!
//! ```
//! use activity_core::{codec, Payload};
//!
//! let payload = Payload::json(&"hello").unwrap();
//! let bytes = codec::to_vec(&payload).unwrap();
//! assert_eq!(codec::from_slice::<Payload>(&bytes).unwrap(), payload);
//! ```

use serde::{de::DeserializeOwned, Serialize};

/// Model bytes could not be written or read back.
///
/// Never worth retrying: the same value or bytes fail the same way again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A value could not be encoded.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// The type being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// Bytes did not decode as the expected type (corrupt, or written by a
    /// newer version).
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// The type expected.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: rmp_serde::decode::Error,
    },
}

/// Encodes `value` as model bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(|source| CodecError::Encode {
        what: std::any::type_name::<T>(),
        source,
    })
}

/// Decodes model bytes written by [`to_vec`].
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|source| CodecError::Decode {
        what: std::any::type_name::<T>(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        failure::{ApplicationFailure, Failure},
        workflow::{EventKind, HistoryEvent},
        Payload,
    };

    #[test]
    fn events_round_trip_and_payloads_stay_compact() {
        let result = Payload::json(&vec!["x".repeat(100); 10]).unwrap();
        let event = HistoryEvent::new(
            7,
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            EventKind::ActivityCompleted {
                seq: 3,
                result: result.clone(),
            },
        );
        let bytes = to_vec(&event).unwrap();
        assert_eq!(from_slice::<HistoryEvent>(&bytes).unwrap(), event);
        assert!(
            bytes.len() < result.len() + 200,
            "{} bytes for a {}-byte payload",
            bytes.len(),
            result.len()
        );
    }

    #[test]
    fn a_decode_error_names_the_type() {
        let failure = Failure::Application(ApplicationFailure::new("E", "boom"));
        let bytes = to_vec(&failure).unwrap();
        let err = from_slice::<HistoryEvent>(&bytes).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot decode activity_core::workflow::history::HistoryEvent"),
            "{err}"
        );
    }
}
