//! Bilingual texts: every user-facing string in a checklist or methodology has Russian and
//! English forms, so the mobile client and exports never fall back to an id.

use serde::{Deserialize, Serialize};

/// A text in Russian and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    /// Russian text (the legal language of the passport).
    pub ru: String,
    /// English text.
    pub en: String,
}

impl Localized {
    /// Borrows both texts.
    #[must_use]
    pub fn as_ref(&self) -> Text<'_> {
        Text {
            ru: &self.ru,
            en: &self.en,
        }
    }
}

/// A borrowed bilingual text, used in results so that scoring does not copy messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Text<'a> {
    /// Russian text.
    pub ru: &'a str,
    /// English text.
    pub en: &'a str,
}
