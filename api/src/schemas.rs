//! Schemas of the values the server checks itself (names, emails, passwords, closed sets of names,
//! the `Idempotency-Key` header), for `#[schema(schema_with = ..)]` and `#[param(schema_with =
//! ..)]`. Each describes exactly what the server accepts: the domain's rule, written as JSON
//! Schema, with the domain's own constants and name lists, so the two cannot drift apart. The
//! document must never promise more than the server takes, nor less.

use adledger_domain::user::PasswordPolicy;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

/// What Rust's `str::trim` strips (Unicode `White_Space`), as a regex class. Not `\s`: Python's
/// (the fuzzer's) also matches U+001C..U+001F, control characters the server refuses.
const SPACE: &str = r"[\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// Neither a control character (`char::is_control`, Unicode Cc) nor white space.
const VISIBLE: &str = r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// Not a control character (white space allowed).
const PRINTABLE: &str = r"[^\x00-\x1F\x7F-\x9F]";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A name as the domain reads one: trimmed, then 1 to `max` characters, none of them a control
/// character. Surrounding white space is accepted (and dropped), so the bound is on what is
/// between the first and the last visible character, not on the raw length.
fn trimmed_name(max: usize) -> Object {
    let inner = max.saturating_sub(2);
    string()
        .pattern(Some(format!(
            "^{SPACE}*{VISIBLE}(?:{PRINTABLE}{{0,{inner}}}{VISIBLE})?{SPACE}*$"
        )))
        .description(Some(format!(
            "1 to {max} characters once trimmed, no control characters"
        )))
        .build()
}

/// A workspace's, a person's or a connection's name (label): 1 to 200 characters.
pub fn name() -> Object {
    trimmed_name(200)
}

/// An API key's name: 1 to 100 characters.
pub fn key_name() -> Object {
    trimmed_name(100)
}

/// An email address as the domain takes one: trimmed, 3 to 254 characters, one `@` with text on
/// both sides, no white space or control characters. Not `format: email`: that is RFC 5321's
/// grammar, stricter than the server (whether mail reaches an address is the mail server's
/// business), and a document must not refuse what the server takes.
pub fn email() -> Object {
    let part = r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000@]+";
    string()
        .pattern(Some(format!(
            r"^{SPACE}*(?={VISIBLE}{{3,254}}{SPACE}*$){part}@{part}{SPACE}*$"
        )))
        .build()
}

/// A new password: 12 to 1024 characters (not bytes), anything allowed.
pub fn new_password() -> Object {
    string()
        .min_length(Some(PasswordPolicy::MIN_CHARS))
        .max_length(Some(PasswordPolicy::MAX_CHARS))
        .build()
}

/// One of a closed set of names.
fn one_of(names: impl IntoIterator<Item = &'static str>) -> Object {
    string().enum_values(Some(names)).build()
}

/// A member's role.
pub fn role() -> Object {
    one_of(adledger_domain::Role::ALL.map(|r| r.as_str()))
}

/// An API key's scope.
pub fn scope() -> Object {
    one_of(adledger_domain::ApiKeyScope::ALL.map(|s| s.as_str()))
}

/// Any platform adledger knows.
pub fn platform() -> Object {
    one_of(adledger_domain::Platform::ALL.map(|p| p.as_str()))
}

/// The platforms that connect without OAuth: the sandbox.
pub fn direct_platform() -> Object {
    one_of([adledger_domain::Platform::Sandbox.as_str()])
}

/// A stream's name (`adledger_domain::StreamId`): 1 to 200 printable ASCII characters.
pub fn stream_id() -> Object {
    string().pattern(Some("^[ -~]{1,200}$")).build()
}

/// An RFC 3339 time with its offset, as the server parses it (days 29 to 31 left out, so that
/// every string the pattern allows is a real time).
const TIME: &str = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:\
                    [0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])";

/// A point in the past (`adledger_domain::AsOf`): a log position, or an RFC 3339 time.
pub fn as_of() -> Object {
    string()
        .pattern(Some(format!("^(?:[1-9][0-9]{{0,17}}|{TIME})$")))
        .description(Some("a log position, or an RFC 3339 time"))
        .build()
}

/// An RFC 3339 time.
pub fn time() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .pattern(Some(format!("^{TIME}$")))
        .build()
}

/// Event types, comma-separated.
pub fn event_types() -> Object {
    let names: Vec<&str> = adledger_domain::DomainEvent::TYPES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    comma_separated(&names)
}

/// An actor of the events API's filter (`adledger_infra::ActorFilter`).
pub fn actor() -> Object {
    let uuid = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}";
    string()
        .pattern(Some(format!(
            "^(?:(?:user|api_key):{uuid}|system|system:[!-~]{{1,100}}|anonymous)$"
        )))
        .build()
}

/// A kind of stream.
pub fn stream_type() -> Object {
    one_of(adledger_domain::StreamType::ALL.map(|t| t.as_str()))
}

/// How insights are summed over time.
pub fn granularity() -> Object {
    one_of(adledger_projections::daily_insights::Granularity::ALL.map(|g| g.as_str()))
}

/// What insights are grouped by, comma-separated.
pub fn group_by() -> Object {
    comma_separated(&adledger_projections::daily_insights::GroupBy::ALL.map(|g| g.as_str()))
}

/// Page sizes `crate::paging::PageSize` takes (a test below holds them together).
const PAGE_SIZES: (i64, i64) = (1, 500);

/// A page size.
pub fn page_size() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(PAGE_SIZES.0))
        .maximum(Some(PAGE_SIZES.1))
        .build()
}

/// The `Idempotency-Key` header of the writes that take one: `params(IdempotencyKey)`.
pub struct IdempotencyKey;

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        // 1 to 255 printable ASCII characters; spaces only inside, as HTTP drops them around
        // a header's value.
        let key = string()
            .pattern(Some("^[!-~](?:[ -~]{0,253}[!-~])?$"))
            .min_length(Some(1))
            .max_length(Some(255))
            .build();
        vec![ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(utoipa::openapi::Required::False)
            .description(Some(
                "A retry with the same key (and the same body) gets the first answer and \
                 changes nothing",
            ))
            .schema(Some(key))
            .build()]
    }
}

/// A comma-separated list whose items are each one of `names` (blanks between commas ignored).
fn comma_separated(names: &[&str]) -> Object {
    let item = names.join("|");
    string()
        .pattern(Some(format!(
            "^(?:{SPACE}*(?:{item})?{SPACE}*)(?:,{SPACE}*(?:{item})?{SPACE}*)*$"
        )))
        .description(Some(format!("comma-separated: {}", names.join(", "))))
        .build()
}

/// A comma-separated list of UUIDs (blanks between commas ignored), hyphenated as usual.
pub fn comma_separated_uuids() -> Object {
    let uuid = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}";
    string()
        .pattern(Some(format!(
            "^(?:{SPACE}*(?:{uuid})?{SPACE}*)(?:,{SPACE}*(?:{uuid})?{SPACE}*)*$"
        )))
        .description(Some("comma-separated UUIDs"))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::PageSize;

    #[test]
    fn page_sizes_are_the_ones_the_server_takes() {
        let (min, max) = PAGE_SIZES;
        assert!(PageSize::parse(Some(min)).is_ok());
        assert!(PageSize::parse(Some(max)).is_ok());
        assert!(PageSize::parse(Some(min - 1)).is_err());
        assert!(PageSize::parse(Some(max + 1)).is_err());
    }
}
