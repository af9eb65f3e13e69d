//! Text that must never reach the database: PostgreSQL's `text` and `jsonb` cannot hold NUL
//! characters (U+0000) and answer an error a client would see as a 500. Finds them in request
//! bodies and query strings and names the field they are in.

use serde_json::Value;

pub const NUL_MESSAGE: &str = "must not contain NUL characters (U+0000)";

/// The field of a JSON body that holds a NUL character (`email`, `campaign_ids[2]`, `a.b`), in a
/// key or a value; `None` when there is none. Only bodies that spell the escape are parsed.
pub fn nul_in_json(body: &[u8]) -> Option<String> {
    // A NUL inside a JSON string can only be written as the escape `\u0000`.
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    nul_in_value(&value, "")
}

fn nul_in_value(value: &Value, path: &str) -> Option<String> {
    let field = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in_value(item, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(name, item)| {
            if name.contains('\0') {
                Some(field(&name.replace('\0', "\\u0000")))
            } else {
                nul_in_value(item, &field(name))
            }
        }),
        _ => None,
    }
}

/// The query parameter whose name or value holds a NUL character once percent-decoded.
pub fn nul_in_query(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', "\\u0000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_that_holds_a_nul() {
        assert_eq!(
            nul_in_json(br#"{"email":"a\u0000b"}"#).as_deref(),
            Some("email")
        );
        assert_eq!(
            nul_in_json(br#"{"a":{"ids":["x","y\u0000"]}}"#).as_deref(),
            Some("a.ids[1]")
        );
        assert_eq!(
            nul_in_json(br#"{"k\u0000":1}"#).as_deref(),
            Some("k\\u0000")
        );
        // An escaped backslash followed by `u0000` is six characters of text, not a NUL.
        assert_eq!(nul_in_json(br#"{"email":"a\\u0000b"}"#), None);
        assert_eq!(nul_in_json(br#"{"email":"ab"}"#), None);
    }

    #[test]
    fn names_the_query_parameter_that_holds_a_nul() {
        assert_eq!(nul_in_query("actor=a%00b&x=1").as_deref(), Some("actor"));
        assert_eq!(nul_in_query("x=1&action=%00").as_deref(), Some("action"));
        assert_eq!(nul_in_query("actor=ab"), None);
    }
}
