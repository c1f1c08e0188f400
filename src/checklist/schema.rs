//! The checklist file format as written in YAML, before checking. Every struct denies
//! unknown keys so a typo is an error with file:line:column; values that later checks
//! complain about are `Spanned` so those errors point at the right place too.
//! The documented format is in checklists/README.md.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::text::Localized;
use super::types::{Category, PhotoPolicy, Severity, Work, Zone};
use super::unit::Unit;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChecklist {
    pub id: Spanned<String>,
    pub version: Spanned<String>,
    pub zone: Zone,
    pub title: Localized,
    #[serde(default)]
    pub description: Option<Localized>,
    pub items: Vec<RawItem>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawItemType {
    Boolean,
    Number,
    Count,
    Choice,
    MultiChoice,
    Text,
    Photo,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawItem {
    pub id: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<RawItemType>,
    pub question: Localized,
    #[serde(default)]
    pub hint: Option<Localized>,
    #[serde(default)]
    pub unit: Option<Spanned<Unit>>,
    #[serde(default)]
    pub range: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    pub options: Option<Spanned<Vec<RawOption>>>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub photo: Option<Spanned<PhotoPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOption {
    pub id: Spanned<String>,
    pub label: Localized,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: Spanned<String>,
    #[serde(default)]
    pub title: Option<Localized>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    #[serde(default)]
    pub check: Option<Spanned<String>>,
    /// Instead of `check`: what a reviewer must judge, e.g. from the photo.
    #[serde(default)]
    pub review: Option<Spanned<Localized>>,
    pub severity: Severity,
    pub affects: Spanned<Vec<Category>>,
    pub norm: Norm,
    pub message: RawMessages,
    pub work: Work,
}

/// The norm a rule comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Norm {
    /// The document, e.g. `СП 59.13330.2020`.
    pub document: String,
    /// The clause, e.g. `5.1.15`; "(verify)" marks a number to check against the text.
    pub clause: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMessages {
    pub pass: Localized,
    pub fail: Localized,
}
