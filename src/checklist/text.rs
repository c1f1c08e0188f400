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
