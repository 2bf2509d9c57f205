//! A report's answer as JSON text, serialised once.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;

/// The answer of a triage as the JSON text that was sent: built once by the API, kept as is
/// by the embedded store and the spool, written to PostgreSQL's `jsonb` without re-encoding,
/// and sent again by `GET /v1/triage/{id}`.
///
/// Text rather than a `serde_json::Value` tree: a value tree of an 8 KB answer is hundreds of
/// small allocations (about four times the memory), and building, cloning and serialising it
/// again took a fifth of the service's CPU under load. Cloning is a reference count.
#[derive(Clone)]
pub struct JsonBody(Bytes);

/// Equal when the texts are, or else when they hold the same JSON value (PostgreSQL's `jsonb`
/// gives a report back with its keys in its own order).
impl PartialEq for JsonBody {
    fn eq(&self, other: &JsonBody) -> bool {
        self.0 == other.0 || self.to_value() == other.to_value()
    }
}

impl Eq for JsonBody {}

/// Bytes a body is first given room for.
const INITIAL_CAPACITY: usize = 8 * 1024;

impl JsonBody {
    /// `value` serialised.
    pub fn new<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<JsonBody> {
        // A triage answer is a few kilobytes: one allocation of that size, not a dozen
        // doublings from empty.
        let mut text = Vec::with_capacity(INITIAL_CAPACITY);
        serde_json::to_writer(&mut text, value)?;
        Ok(JsonBody(Bytes::from(text)))
    }

    /// Text already known to be one JSON value (from our own serialiser or from PostgreSQL).
    pub(crate) fn from_trusted(text: Vec<u8>) -> JsonBody {
        JsonBody(Bytes::from(text))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, for a response body (no copy).
    pub fn bytes(&self) -> Bytes {
        self.0.clone()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parsed, for tests and tools.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for JsonBody {
    fn from(v: serde_json::Value) -> JsonBody {
        JsonBody::new(&v).expect("a Value always serialises")
    }
}

/// Only the size: an answer holds what a person's text led to.
impl fmt::Debug for JsonBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonBody({} bytes)", self.0.len())
    }
}

impl Serialize for JsonBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.0).map_err(serde::ser::Error::custom)?;
        let raw: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// Through a value tree: a raw value cannot be read inside an internally tagged enum, which is
/// how the spool frames its records, and only the spool's replay reads a body back this way.
impl<'de> Deserialize<'de> for JsonBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonBody, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        JsonBody::new(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nests_as_json_and_reads_back() {
        let body = JsonBody::from(json!({"a": [1, 2], "b": "x"}));
        let outer = json!({"id": 1, "body": body.to_value()});
        let text = serde_json::to_string(&serde_json::json!({"id": 1, "body": body})).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), outer);
        #[derive(Deserialize)]
        struct Outer {
            body: JsonBody,
        }
        let back: Outer = serde_json::from_str(&text).unwrap();
        assert_eq!(back.body, body);
        // Inside an internally tagged enum, as the spool writes reports.
        #[derive(Serialize, Deserialize)]
        #[serde(tag = "t")]
        enum Tagged {
            R { body: JsonBody },
        }
        let framed = serde_json::to_vec(&Tagged::R { body: body.clone() }).unwrap();
        let Tagged::R { body: back } = serde_json::from_slice(&framed).unwrap();
        assert_eq!(back, body);
        let reordered = JsonBody::from_trusted(br#"{"b": "x", "a": [1,2]}"#.to_vec());
        assert_eq!(reordered, body);
        assert_ne!(JsonBody::from(json!({"a": [2, 1], "b": "x"})), body);
        assert_eq!(format!("{body:?}"), format!("JsonBody({} bytes)", body.len()));
    }
}
