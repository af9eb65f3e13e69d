//! Opening the sealed strings inside JSON documents (events as replayed, exports) in one batch:
//! each sealed value becomes its plaintext, or [`ERASED_MARKER`] once its subject was erased.

use super::subject_keys::{is_sealed, Opened, Sealer, ERASED_MARKER};
use super::CryptoError;
use serde_json::Value;

fn collect<'a>(value: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match value {
        Value::String(s) if is_sealed(s) => out.push(s),
        Value::Array(items) => items.iter_mut().for_each(|v| collect(v, out)),
        Value::Object(map) => map.values_mut().for_each(|v| collect(v, out)),
        _ => {}
    }
}

impl Sealer {
    /// Replaces every sealed string inside `values` by its plaintext, or by `[erased]`.
    pub async fn reveal_json(&self, values: &mut [Value]) -> Result<(), CryptoError> {
        let mut slots = Vec::new();
        for value in values.iter_mut() {
            collect(value, &mut slots);
        }
        if slots.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
        let opened = self.open_many(&texts).await?;
        for (slot, opened) in slots.into_iter().zip(opened) {
            *slot = match opened {
                Opened::Plain(text) | Opened::Revealed(text) => text,
                Opened::Erased => ERASED_MARKER.to_owned(),
            };
        }
        Ok(())
    }
}
