//! Payloads: the serialized form of arguments, results and heartbeat details.
//!
//! Every argument of an activity is its own payload (the convention of
//! Temporal-style SDKs), so a schedule carries `Vec<Payload>` in argument order.

use std::fmt;

use bytes::Bytes;

use schemars::{JsonSchema, SchemaGenerator};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

/// How a payload's bytes are encoded.
///
/// Spelled by its stable name ([`Encoding::as_str`], e.g. `"json/plain"`)
/// wherever it is stored or sent, and read back by one parser,
/// [`Encoding::parse`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// UTF-8 JSON produced by `serde_json`.
    #[default]
    Json,
}

impl Encoding {
    /// Every encoding.
    pub const ALL: [Encoding; 1] = [Encoding::Json];

    /// The encoding's stable name, as stored and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json/plain",
        }
    }

    /// Parses [`Encoding::as_str`]; `None` for a name this version does not know.
    ///
    /// ```
    /// use activity_core::payload::Encoding;
    /// assert_eq!(Encoding::parse("json/plain"), Some(Encoding::Json));
    /// assert_eq!(Encoding::parse("xml"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Encoding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        // "Json": the variant name that databases of schema 3 and earlier hold.
        Encoding::parse(&name)
            .or_else(|| (name == "Json").then_some(Encoding::Json))
            .ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "unknown payload encoding `{name}` (this version knows {})",
                    Encoding::ALL.map(Encoding::as_str).join(", ")
                ))
            })
    }
}

/// One serialized value.
///
/// The bytes are shared ([`Bytes`]): cloning a payload (a retry's input, a
/// history event, a conversion to the wire) copies no data. In serialized form
/// (stored rows, model bytes on the wire) they are bytes in binary formats and
/// base64 text in human-readable ones such as JSON.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// How [`Payload::data`] is encoded.
    pub encoding: Encoding,
    /// The encoded bytes.
    #[serde(with = "data_serde")]
    pub data: Bytes,
}

/// The serialized form of [`Payload::data`] (see [`Payload`]).
mod data_serde {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{de, Deserializer, Serializer};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(data: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
        } else {
            serializer.serialize_bytes(data)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        struct Visit;
        impl<'de> de::Visitor<'de> for Visit {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("payload bytes (bytes, base64 text, or a list of byte values)")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::copy_from_slice(v))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(Bytes::from)
                    .map_err(|e| E::custom(format_args!("payload data is not base64: {e}")))
            }
            // A list of byte values: how databases of schema 3 and earlier hold them.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut data = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(byte) = seq.next_element::<u8>()? {
                    data.push(byte);
                }
                Ok(Bytes::from(data))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visit)
        } else {
            deserializer.deserialize_byte_buf(Visit)
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.data) {
            Ok(text) => write!(f, "Payload({text})"),
            Err(_) => write!(f, "Payload({} bytes)", self.data.len()),
        }
    }
}

impl Payload {
    /// Serializes `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, PayloadError> {
        serde_json::to_vec(value)
            .map(|data| Payload {
                encoding: Encoding::Json,
                data: Bytes::from(data),
            })
            .map_err(|source| PayloadError::Encode {
                what: std::any::type_name::<T>().to_owned(),
                source,
            })
    }

    /// Builds a payload from bytes that already hold JSON (checked).
    pub fn from_json_bytes(data: impl Into<Bytes>) -> Result<Self, PayloadError> {
        let data = data.into();
        serde_json::from_slice::<serde::de::IgnoredAny>(&data).map_err(|source| {
            PayloadError::Decode {
                what: "payload".to_owned(),
                source,
            }
        })?;
        Ok(Payload {
            encoding: Encoding::Json,
            data,
        })
    }

    /// Deserializes the payload as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        self.decode_as(std::any::type_name::<T>())
    }

    /// Deserializes the payload as a `T`, naming it `what` in an error.
    pub fn decode_as<T: DeserializeOwned>(&self, what: &str) -> Result<T, PayloadError> {
        serde_json::from_slice(&self.data).map_err(|source| PayloadError::Decode {
            what: what.to_owned(),
            source,
        })
    }

    /// The payload as a JSON value (for tools and logs).
    pub fn to_json_value(&self) -> Result<Value, PayloadError> {
        self.decode_as("payload")
    }

    /// Size of the encoded data in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the encoded data is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A value could not be converted to or from a [`Payload`].
///
/// Never worth retrying: the same data fails the same way again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// A value could not be serialized.
    #[error("cannot serialize {what}: {source}")]
    Encode {
        /// What was being serialized.
        what: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A payload did not deserialize into the expected type.
    #[error("cannot deserialize {what}: {source}")]
    Decode {
        /// What was being deserialized (e.g. "argument 2 (`cents`) of activity `charge`").
        what: String,
        /// The deserializer's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The number of payloads does not match the activity's parameters.
    #[error("activity `{activity}` takes {expected} argument(s) ({names}), but {found} payload(s) were given")]
    ArgumentCount {
        /// The activity type.
        activity: String,
        /// How many arguments the activity takes.
        expected: usize,
        /// Their names, comma separated.
        names: String,
        /// How many payloads were given.
        found: usize,
    },
}

/// A type that can be an activity argument: owned and serializable, with a JSON Schema.
///
/// Implemented for every type that meets the bounds; never implement it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an activity argument or result",
    label = "not serializable with a JSON Schema",
    note = "activity arguments and results cross process boundaries: derive `serde::Serialize`, `serde::Deserialize` and `schemars::JsonSchema` for `{Self}`"
)]
pub trait ActivityArgument: Serialize + DeserializeOwned + JsonSchema + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + JsonSchema + Send + 'static> ActivityArgument for T {}

/// The arguments of an activity, as a tuple in parameter order: one payload per argument.
///
/// Implemented for tuples of up to 16 [`ActivityArgument`]s.
#[diagnostic::on_unimplemented(
    message = "the parameters of this activity cannot all be serialized",
    label = "every argument must be an owned, serializable type with a JSON Schema",
    note = "see the error on each argument that is not"
)]
pub trait ActivityInput: Sized + Send + 'static {
    /// Number of arguments.
    const ARITY: usize;

    /// Serializes each argument into its own payload.
    fn to_payloads(&self) -> Result<Vec<Payload>, PayloadError>;

    /// Deserializes the arguments; `activity` and `names` are used in errors.
    fn from_payloads(
        payloads: &[Payload],
        activity: &str,
        names: &[&str],
    ) -> Result<Self, PayloadError>;

    /// JSON Schemas of the arguments, in order (subschemas of `generator`).
    fn argument_schemas(generator: &mut SchemaGenerator) -> Vec<schemars::Schema>;
}

fn argument_label(activity: &str, names: &[&str], index: usize) -> String {
    match names.get(index) {
        Some(name) => format!("argument {} (`{name}`) of activity `{activity}`", index + 1),
        None => format!("argument {} of activity `{activity}`", index + 1),
    }
}

macro_rules! tuple_input {
    ($arity:expr; $($idx:tt $T:ident),*) => {
        #[diagnostic::do_not_recommend]
        impl<$($T: ActivityArgument),*> ActivityInput for ($($T,)*) {
            const ARITY: usize = $arity;

            #[allow(unused_variables)]
            fn to_payloads(&self) -> Result<Vec<Payload>, PayloadError> {
                Ok(vec![$(Payload::json(&self.$idx)?),*])
            }

            #[allow(unused_variables)]
            fn from_payloads(
                payloads: &[Payload],
                activity: &str,
                names: &[&str],
            ) -> Result<Self, PayloadError> {
                if payloads.len() != $arity {
                    return Err(PayloadError::ArgumentCount {
                        activity: activity.to_owned(),
                        expected: $arity,
                        names: names.join(", "),
                        found: payloads.len(),
                    });
                }
                Ok(($(
                    payloads[$idx].decode_as::<$T>(&argument_label(activity, names, $idx))?,
                )*))
            }

            #[allow(unused_variables)]
            fn argument_schemas(generator: &mut SchemaGenerator) -> Vec<schemars::Schema> {
                vec![$(generator.subschema_for::<$T>()),*]
            }
        }
    };
}

tuple_input!(0;);
tuple_input!(1; 0 A);
tuple_input!(2; 0 A, 1 B);
tuple_input!(3; 0 A, 1 B, 2 C);
tuple_input!(4; 0 A, 1 B, 2 C, 3 D);
tuple_input!(5; 0 A, 1 B, 2 C, 3 D, 4 E);
tuple_input!(6; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
tuple_input!(7; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
tuple_input!(8; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);
tuple_input!(9; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I);
tuple_input!(10; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J);
tuple_input!(11; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K);
tuple_input!(12; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L);
tuple_input!(13; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M);
tuple_input!(14; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M, 13 N);
tuple_input!(15; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M, 13 N, 14 O);
tuple_input!(16; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M, 13 N, 14 O, 15 P);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_payload_per_argument_in_order() {
        let input = ("card-1".to_owned(), 250_u64, vec![true]);
        let payloads = input.to_payloads().unwrap();
        assert_eq!(payloads.len(), 3);
        assert_eq!(&payloads[0].data[..], br#""card-1""#);
        assert_eq!(&payloads[1].data[..], b"250");
        assert_eq!(&payloads[2].data[..], b"[true]");
        let back =
            <(String, u64, Vec<bool>)>::from_payloads(&payloads, "charge", &["card", "cents", "x"])
                .unwrap();
        assert_eq!(back, input);
    }

    #[test]
    fn decode_error_names_the_argument() {
        let payloads = vec![Payload::json("c").unwrap(), Payload::json("lots").unwrap()];
        let err = <(String, u64)>::from_payloads(&payloads, "charge", &["card", "cents"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("argument 2 (`cents`) of activity `charge`"),
            "{err}"
        );
        assert!(err.contains("expected u64"), "{err}");
    }

    #[test]
    fn wrong_argument_count_lists_the_parameters() {
        let payloads = vec![Payload::json("c").unwrap()];
        let err = <(String, u64)>::from_payloads(&payloads, "charge", &["card", "cents"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "activity `charge` takes 2 argument(s) (card, cents), but 1 payload(s) were given"
        );
    }

    #[test]
    fn from_json_bytes_rejects_malformed_json() {
        assert!(Payload::from_json_bytes(b"{\"a\":".to_vec()).is_err());
        assert!(Payload::from_json_bytes(b"{\"a\":1}".to_vec()).is_ok());
    }

    #[test]
    fn data_is_bytes_in_binary_formats_and_base64_in_json() {
        let payload = Payload::json(&"héllo").unwrap();
        let packed = crate::codec::to_vec(&payload).unwrap();
        // The encoding's name and the bytes as they are: no list of integers.
        assert!(packed.len() < payload.len() + 32, "{} bytes", packed.len());
        assert_eq!(
            crate::codec::from_slice::<Payload>(&packed).unwrap(),
            payload
        );
        let text = serde_json::to_string(&payload).unwrap();
        assert_eq!(text, r#"{"encoding":"json/plain","data":"ImjDqWxsbyI="}"#);
        assert_eq!(serde_json::from_str::<Payload>(&text).unwrap(), payload);
    }

    #[test]
    fn payloads_stored_by_schema_3_still_read() {
        let old = r#"{"encoding":"Json","data":[49,50]}"#;
        let payload: Payload = serde_json::from_str(old).unwrap();
        assert_eq!(payload, Payload::json(&12).unwrap());
        let unknown = serde_json::from_str::<Payload>(r#"{"encoding":"xml","data":""}"#);
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("unknown payload encoding `xml`"));
    }
}
