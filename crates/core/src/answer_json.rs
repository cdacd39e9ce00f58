//! An [`Evaluation`] written as JSON without serde: byte for byte what its
//! `Serialize` writes, from parts written when the flag was compiled.
//!
//! A bulk answer is dozens of small objects; through serde every field name is
//! escaped again and every variant value walked again per evaluation (≈ 8 % of the
//! server's time under REST bulk load). Here a served variant's `"value":..,
//! "variant":".."` is written once per compiled flag, when first needed, and copied
//! after that ([`served_fields`]); field names are constants, and strings are escaped
//! only when they need it.

use serde_json::Value;

use crate::evaluation::Evaluation;

/// `"value":<value>,"variant":"<name>"`: what every evaluation serving this variant
/// starts with, kept by its flag.
fn served_fields(name: &str, value: &Value) -> Box<str> {
    let mut out = Vec::with_capacity(name.len() + 24);
    write_value_and_variant(&mut out, Some(value), Some(name));
    String::from_utf8(out)
        .unwrap_or_else(|_| unreachable!("serde_json writes UTF-8"))
        .into_boxed_str()
}

/// `"value":<value or null>,"variant":<"name" or null>`.
fn write_value_and_variant(out: &mut Vec<u8>, value: Option<&Value>, variant: Option<&str>) {
    out.extend_from_slice(b"\"value\":");
    // Writing a `Value` into memory cannot fail (its map keys are strings).
    let _ = serde_json::to_writer(&mut *out, &value);
    out.extend_from_slice(b",\"variant\":");
    match variant {
        Some(name) => write_str(out, name),
        None => out.extend_from_slice(b"null"),
    }
}

/// `s` as a JSON string: copied as it is unless a byte needs escaping.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Escaping a string into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

impl Evaluation<'_> {
    /// Writes the evaluation as a JSON object, exactly as `serde_json` serialises it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        self.write_json_fields(out);
        out.push(b'}');
    }

    /// Writes the evaluation's fields, `"value":..,..`, without the braces: for
    /// answers that add fields of their own.
    pub fn write_json_fields(&self, out: &mut Vec<u8>) {
        match (self.served_fields, self.variant, self.value) {
            (Some(kept), Some(name), Some(value)) => {
                let fields = kept.get_or_init(|| served_fields(name, value));
                out.extend_from_slice(fields.as_bytes());
            }
            (_, variant, value) => write_value_and_variant(out, value, variant),
        }
        out.extend_from_slice(b",\"reason\":\"");
        out.extend_from_slice(self.reason.as_str().as_bytes());
        out.push(b'"');
        if let Some(id) = self.rule_id {
            out.extend_from_slice(b",\"rule_id\":");
            write_str(out, id);
        }
        out.extend_from_slice(b",\"flag_version\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.flag_version).as_bytes());
        if let Some(error) = self.error {
            out.extend_from_slice(b",\"error\":\"");
            out.extend_from_slice(error.as_str().as_bytes());
            out.push(b'"');
        }
    }
}
