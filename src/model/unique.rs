//! Duplicated members refused everywhere in a model, as serde's derive refuses a duplicated
//! known property: in the properties a model does not know (which serde would collect into
//! `other` keeping the last) and in the JSON values they hold.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// One step of the path from a model's unknown properties down to a value.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where a value is, as a list of steps on the stack: built into a string only for an error.
struct At<'a> {
    parent: Option<&'a At<'a>>,
    step: Step<'a>,
}

/// The longest member name an error repeats, in characters.
const MAX_NAME: usize = 64;

impl At<'_> {
    fn path(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(a) = at {
            steps.push(&a.step);
            at = a.parent;
        }
        let mut out = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Step::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.extend(k.chars().take(MAX_NAME));
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// The message [`ModelError`](super::ModelError) reads back: the duplicated member's path,
/// relative to the object that holds the model's unknown properties.
pub(super) const DUPLICATE: &str = "duplicate member `";

fn duplicate<E: de::Error>(at: &At<'_>) -> E {
    E::custom(format_args!("{DUPLICATE}{}`", at.path()))
}

/// A model's unknown properties: like `serde_json::Map`'s own deserialization, but a name
/// that appears twice, there or in any object they hold, is an error naming it.
pub(crate) fn members<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    d.deserialize_map(ValueSeed { at: None }).map(|v| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

/// A JSON value at `at` (`None`: the unknown properties themselves).
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    at: Option<&'a At<'a>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own `Value` does: JSON has no NaN or infinity to read.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let at = At {
                parent: self.at,
                step: Step::Index(out.len()),
            };
            match seq.next_element_seed(ValueSeed { at: Some(&at) })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = At {
                parent: self.at,
                step: Step::Key(&key),
            };
            if out.contains_key(&key) {
                return Err(duplicate(&at));
            }
            let value = map.next_value_seed(ValueSeed { at: Some(&at) })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}
