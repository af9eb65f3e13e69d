//! Integers of JSON bodies as JSON Schema (and so the OpenAPI document) counts them: `286.0` is
//! the integer 286, a number without a fractional part, which serde's integer types refuse.
//! Integer fields of request bodies read through here (`deserialize_with`), so that the server
//! takes every integer its document allows, and refuses, naming the field, what it does not.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// An integer of type `T`, written with or without a zero fraction.
pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let number = serde_json::Number::deserialize(d)?;
    let whole = number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
        .or_else(|| {
            // Only floats whose value is a whole number that fits: 2^127 bounds i128.
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(127))
                .map(|f| f as i128)
        });
    match whole {
        None => Err(D::Error::custom(format!("{number} is not an integer"))),
        Some(value) => {
            T::try_from(value).map_err(|_| D::Error::custom(format!("{number} is out of range")))
        }
    }
}

/// An optional integer: absent or `null` is `None`. Use with `#[serde(default)]`.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    #[derive(Deserialize)]
    struct Whole<T: TryFrom<i128>>(#[serde(deserialize_with = "deserialize")] T);
    Ok(Option::<Whole<T>>::deserialize(d)?.map(|Whole(v)| v))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::deserialize")]
        count: u32,
        #[serde(default, deserialize_with = "super::optional")]
        hours: Option<i64>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_numbers_count_with_or_without_a_zero_fraction() {
        let body = parse(r#"{"count": 286.0, "hours": 2}"#).unwrap();
        assert_eq!((body.count, body.hours), (286, Some(2)));
        assert_eq!(
            parse(r#"{"count": 3, "hours": -5.0}"#).unwrap().hours,
            Some(-5)
        );
        assert_eq!(parse(r#"{"count": 3, "hours": null}"#).unwrap().hours, None);
        assert_eq!(parse(r#"{"count": 3}"#).unwrap().hours, None);
        assert_eq!(parse(r#"{"count": 1e3}"#).unwrap().count, 1000);
    }

    #[test]
    fn fractions_text_and_numbers_out_of_range_are_refused() {
        for json in [
            r#"{"count": 2.5}"#,
            r#"{"count": "2"}"#,
            r#"{"count": -1}"#,
            r#"{"count": 4294967296}"#,
            r#"{"count": 1e300}"#,
            r#"{"count": 1, "hours": 0.5}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }
}
