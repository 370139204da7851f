//! Reading request bodies: a JSON object, its arrays, a message's content type.

use serde_json::{Map, Value};

use crate::util::{ApiError, ApiResult};

pub(super) fn json_object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("The request needs a JSON body"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("The request body must be a JSON object")),
        Err(e) => Err(ApiError::bad(format!(
            "The request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

pub(super) fn array_field(body: &Map<String, Value>, name: &str) -> ApiResult<Option<Vec<Value>>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(_) => Err(ApiError::bad(format!("{name} must be an array"))),
    }
}

pub(super) fn content_type(v: Option<&Value>) -> ApiResult<&'static str> {
    match v {
        None | Some(Value::Null) => Ok("text"),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("text") => Ok("text"),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("html") => Ok("html"),
        Some(other) => Err(ApiError::bad(format!("contentType {other}: text or html"))),
    }
}
