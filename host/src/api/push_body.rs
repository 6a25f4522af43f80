//! The body of `PUT /v1/namespace` read without copying its big strings:
//! an array form's base64 `data` stays a `&str` borrowed from the request
//! bytes until it is decoded into the value's final buffer (a float64 form
//! of 80 MB is a 107 MB string; parsing it into a `serde_json::Value` first
//! copied all of it).
//!
//! Invariants:
//! - Whatever this parses means exactly what `PushRequest` (the documented
//!   schema) means: every value that is not an object with a string `data`
//!   is an ordinary `serde_json::Value`, and an object with one converts as
//!   the whole object would (`NsValue::from_form_parts`).
//! - A body this does not parse is parsed again as `PushRequest`, so its
//!   error answer is the one every JSON route gives.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, value::MapAccessDeserializer, value::SeqAccessDeserializer, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::engine::NsValue;
use crate::scheduler::Targets;

/// Unknown fields are refused, as `PushRequest` refuses them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBody<'a> {
    #[serde(default)]
    pub targets: Targets,
    #[serde(borrow)]
    pub values: BTreeMap<Cow<'a, str>, PushItem<'a>>,
}

/// Pushed values by name, each decoded or why it could not be
/// (what `Controller::push_values` takes).
pub type Decoded = Vec<(String, Result<NsValue, String>)>;

impl PushBody<'_> {
    /// The targets, and each value decoded (or why it could not be) by name.
    pub fn into_parts(self) -> (Targets, Decoded) {
        let values = self
            .values
            .into_iter()
            .map(|(name, item)| {
                let value = match item {
                    PushItem::Value(v) => NsValue::from_json(&v),
                    PushItem::Form { fields, data } => NsValue::from_form_parts(fields, data),
                };
                (name.into_owned(), value)
            })
            .collect();
        (self.targets, values)
    }
}

/// One pushed value: an object with a string `data` (maybe an array form)
/// held apart, or any other JSON value.
pub enum PushItem<'a> {
    Form { fields: Map<String, Json>, data: Cow<'a, str> },
    Value(Json),
}

impl<'de: 'a, 'a> Deserialize<'de> for PushItem<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = PushItem<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Map::new();
        let mut data: Option<Data<'de>> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "data" {
                // As in a `Value`, a repeated key keeps its last value.
                data = Some(map.next_value()?);
            } else {
                fields.insert(key, map.next_value()?);
            }
        }
        Ok(match data {
            Some(Data::Text(data)) => PushItem::Form { fields, data },
            Some(Data::Other(v)) => {
                fields.insert("data".into(), v);
                PushItem::Value(Json::Object(fields))
            }
            None => PushItem::Value(Json::Object(fields)),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Json::deserialize(SeqAccessDeserializer::new(seq)).map(PushItem::Value)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::String(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(PushItem::Value(Json::Null))
    }
}

/// A `data` field: text (borrowed when it has no escapes), or anything else.
enum Data<'a> {
    Text(Cow<'a, str>),
    Other(Json),
}

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Data::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Data::Text(Cow::Owned(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Data::Text(Cow::Owned(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Json::deserialize(MapAccessDeserializer::new(map)).map(Data::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Json::deserialize(SeqAccessDeserializer::new(seq)).map(Data::Other)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Data::Other(Json::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Data::Other(Json::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Data::Other(Json::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Data::Other(Json::from(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Data::Other(Json::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value means what it means in a `Value`, and a float64 form's
    /// data is borrowed from the body.
    #[test]
    fn borrowed_values_mean_what_values_mean() {
        let body = br#"{"targets": "all", "values": {
            "a": 3, "b": -2.5, "c": "text", "d": [1, 2, 3], "e": null, "f": true,
            "g": {"dtype": "float64", "shape": [2], "data": "AAAAAAAA8D8AAAAAAAAAQA=="},
            "h": {"data": 5, "x": [1]}, "i": {"data": "no\u0020form"}, "j": {"x": 1},
            "k": {"dtype": "int64", "data": "AQAAAAAAAAA="}
        }}"#;
        let parsed: PushBody = serde_json::from_slice(body).expect("parses");
        assert!(serde_json::from_slice::<PushBody>(br#"{"values": {"a": 1}, "other": 2}"#).is_err(), "unknown fields are refused");
        assert!(matches!(&parsed.values["g"], PushItem::Form { data: Cow::Borrowed(_), .. }));
        let plain: serde_json::Value = serde_json::from_slice(body).expect("json");
        for (name, got) in parsed.into_parts().1 {
            let want = NsValue::from_json(&plain["values"][&name]);
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{name}");
        }
    }
}
