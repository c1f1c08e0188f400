//! Texts of a checklist with their JSON rendered once, when the checklist is compiled.
//!
//! Every evaluation repeats each rule's norm, categories and message, most of it Cyrillic,
//! and an audit's answer carries the evaluation on every write. Escaping those strings again
//! for every answer took about a third of the time spent writing an evaluation's JSON. A
//! [`Raw`] field is copied into the output as the text serde_json made for it at compile
//! time, so the bytes are the same as before (docs/performance.md has the numbers).

use std::fmt;
use std::ops::Deref;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::schema::Norm;
use super::text::Localized;
use super::types::Category;

/// Types whose JSON cannot fail to render: structs of strings and lists of unit enums
/// (serde_json fails only on maps with non-string keys and on custom errors). Sealed: the
/// list is this module's.
pub trait PlainJson: Serialize + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for Localized {}
impl PlainJson for Localized {}
impl sealed::Sealed for Norm {}
impl PlainJson for Norm {}
impl sealed::Sealed for Vec<Category> {}
impl PlainJson for Vec<Category> {}

/// A value of a compiled checklist kept with its compact JSON.
///
/// It serialises as the value itself, field by field, so the compiled checklist and the CLI's
/// pretty output are unchanged; [`Rendered::raw`] lends the value to results whose JSON
/// copies the rendered text instead.
#[derive(Clone)]
pub struct Rendered<T> {
    value: T,
    json: Box<RawValue>,
}

impl<T: PlainJson> Rendered<T> {
    /// Renders `value`.
    #[must_use]
    pub fn new(value: T) -> Self {
        let json = serde_json::value::to_raw_value(&value)
            .unwrap_or_else(|e| unreachable!("a PlainJson value renders as JSON: {e}"));
        Self { value, json }
    }
}

impl<T> Rendered<T> {
    /// The value with its JSON, for a result.
    #[must_use]
    pub fn raw(&self) -> Raw<'_, T> {
        Raw {
            value: &self.value,
            json: &self.json,
        }
    }
}

impl<T> Deref for Rendered<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Rendered<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Rendered<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

/// A borrowed value of a compiled checklist that serialises as the JSON rendered for it.
///
/// The rendered text is written as it is by serde_json's writers (`to_string`, `to_vec`,
/// `to_writer`, `to_raw_value`) and parsed back by `to_value`. A pretty printer copies it
/// compact; other formats would see serde_json's raw-value marker, so results holding a
/// `Raw` are for JSON only.
#[derive(Clone, Copy)]
pub struct Raw<'a, T> {
    value: &'a T,
    json: &'a RawValue,
}

impl<T> Raw<'_, T> {
    /// Whether both lend the same rendered value (the same rendered text, not an equal one).
    #[must_use]
    pub fn is(&self, other: &Raw<'_, T>) -> bool {
        std::ptr::eq(self.json, other.json)
    }
}

impl<T> Deref for Raw<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Raw<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> Serialize for Raw<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

/// A JSON object written field by field into a buffer, for the answers whose derived
/// serialisation costs too much (see [`super::Evaluation::write_json`]). It writes what
/// serde_json's derive writes for a struct with the same fields in the same order: names
/// are Rust field names, which need no escaping, and values go through serde_json.
#[must_use = "the object is closed by `end`"]
pub struct JsonObject<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> JsonObject<'o> {
    /// Opens the object.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Writes `"name":` and lends the buffer for the value.
    pub fn key(&mut self, name: &str) -> &mut Vec<u8> {
        debug_assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "a field name needs no escaping: {name}"
        );
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// Writes a field as serde_json does.
    ///
    /// # Errors
    /// The value does not serialise (see [`serde_json::to_writer`]).
    pub fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> serde_json::Result<()> {
        serde_json::to_writer(self.key(name), value)
    }

    /// Closes the object.
    pub fn end(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ru: &str, en: &str) -> Localized {
        Localized {
            ru: ru.to_owned(),
            en: en.to_owned(),
        }
    }

    #[test]
    fn a_raw_text_writes_the_same_json_as_the_text_itself() {
        // Quotes, backslashes, control characters and Cyrillic: everything serde_json escapes.
        let value = text(
            "Пандус «нет»\n\t\"уклон\" 1:12 \\ \u{1}",
            "Ramp \"none\" \u{7f} é",
        );
        let rendered = Rendered::new(value.clone());
        assert_eq!(
            serde_json::to_string(&rendered.raw()).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_eq!(
            serde_json::to_value(rendered.raw()).unwrap(),
            serde_json::to_value(&value).unwrap()
        );
        // The rendered form serialises as the value, so pretty output stays pretty.
        assert_eq!(
            serde_json::to_string_pretty(&rendered).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
        assert_eq!(rendered.raw().ru, value.ru);
    }

    #[test]
    fn categories_and_norms_render_as_their_own_json() {
        let affects = vec![Category::K, Category::S];
        assert_eq!(
            serde_json::to_string(&Rendered::new(affects.clone()).raw()).unwrap(),
            serde_json::to_string(&affects).unwrap()
        );
        let norm = Norm {
            document: "СП 59.13330.2020".to_owned(),
            clause: "5.1.15 (verify)".to_owned(),
        };
        assert_eq!(
            serde_json::to_string(&Rendered::new(norm.clone()).raw()).unwrap(),
            serde_json::to_string(&norm).unwrap()
        );
    }
}
