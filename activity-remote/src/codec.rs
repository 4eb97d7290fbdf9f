//! The gRPC codec of the service: prost's, except that a request that does not
//! decode is answered `InvalidArgument` naming the field (e.g. a string field
//! that is not UTF-8), with the structured error of [`crate::status`], instead
//! of a bare `INTERNAL`.

use std::marker::PhantomData;

use activity_core::protocol::ProtocolError;
use prost::Message;
use tonic::{
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
    Status,
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// prost's codec with named decode errors (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct WireCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for WireCodec<T, U> {
    fn default() -> Self {
        Self {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for WireCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = WireDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        WireDecoder {
            inner: self.inner.decoder(),
            _message: PhantomData,
        }
    }
}

/// prost's decoder whose errors name the field.
#[derive(Debug)]
pub(crate) struct WireDecoder<U> {
    inner: ProstDecoder<U>,
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for WireDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner
            .decode(buf)
            .map_err(|status| crate::status::to_status(&decode_error(status.message())))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

/// The error of a message that does not decode, from prost's description
/// ("failed to decode Protobuf message: Message.field: invalid string value: data
/// is not UTF-8 encoded"): the innermost `Message.field` names the field.
fn decode_error(message: &str) -> ProtocolError {
    let field = message
        .split(": ")
        .filter_map(|part| part.rsplit_once('.').map(|(_, field)| field))
        .find(|field| {
            !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .unwrap_or("request");
    if message.contains("UTF-8") {
        ProtocolError::invalid_argument(field, "is not valid UTF-8: text fields must be UTF-8")
    } else {
        ProtocolError::invalid_argument(field, format!("does not decode: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_name_the_field() {
        let err = decode_error(
            "failed to decode Protobuf message: DescribeTaskQueueRequest.task_queue: \
             invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(
            err,
            ProtocolError::invalid_argument(
                "task_queue",
                "is not valid UTF-8: text fields must be UTF-8"
            )
        );
        let err = decode_error("failed to decode Protobuf message: buffer underflow");
        assert!(
            matches!(&err, ProtocolError::InvalidArgument { field, .. } if field == "request"),
            "{err:?}"
        );
    }
}
