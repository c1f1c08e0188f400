//! The compiled form of a checklist that mobile clients render: localised texts, types,
//! units, ranges, options, conditions as source text with the items they read, and photo
//! requirements. It is a stable JSON contract served with an ETag (the file's SHA-256).

use serde::Serialize;

use super::expr::Expr;
use super::model::{Checklist, ChoiceOption, Item, ItemKind, Rule, RuleTest};
use super::schema::Norm;
use super::text::Localized;
use super::types::{Category, PhotoPolicy, Severity, Work, Zone};
use super::unit::Unit;

/// A checklist as a client renders it.
#[derive(Debug, Clone, Serialize)]
pub struct CompiledChecklist<'a> {
    /// Checklist id.
    pub id: &'a str,
    /// Semantic version.
    pub version: &'a str,
    /// SHA-256 of the source: use it as the ETag.
    pub sha256: &'a str,
    /// Order 627 zone.
    pub zone: Zone,
    /// Title.
    pub title: &'a Localized,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a Localized>,
    /// Items in order.
    pub items: Vec<CompiledItem<'a>>,
    /// Rules in order.
    pub rules: Vec<CompiledRule<'a>>,
}

/// A condition as source text and the items it reads.
#[derive(Debug, Clone, Serialize)]
pub struct Condition<'a> {
    /// The expression as written.
    pub source: &'a str,
    /// `checklist.item` keys it reads.
    pub reads: &'a [String],
}

impl<'a> From<&'a Expr> for Condition<'a> {
    fn from(e: &'a Expr) -> Self {
        Condition {
            source: e.source(),
            reads: e.item_keys(),
        }
    }
}

/// An item as a client renders it.
#[derive(Debug, Clone, Serialize)]
pub struct CompiledItem<'a> {
    /// Bare id.
    pub id: &'a str,
    /// `checklist.item`, the answer key.
    pub key: &'a str,
    /// `boolean`, `number`, `count`, `choice`, `multi_choice`, `text` or `photo`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The question.
    pub question: &'a Localized,
    /// A hint on how to measure or what to look at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'a Localized>,
    /// Unit of a number item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
    /// `[min, max]` of number and count items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    /// Options of choice items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<CompiledOption<'a>>>,
    /// When the item is asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition<'a>>,
    /// Whether an answer is needed before submission.
    pub required: bool,
    /// When a photo is needed.
    pub photo: PhotoPolicy,
}

/// A choice option.
#[derive(Debug, Clone, Serialize)]
pub struct CompiledOption<'a> {
    /// Option id.
    pub id: &'a str,
    /// Label.
    pub label: &'a Localized,
}

/// A rule as a client shows it (e.g. live feedback while measuring).
#[derive(Debug, Clone, Serialize)]
pub struct CompiledRule<'a> {
    /// Bare id.
    pub id: &'a str,
    /// `checklist.rule`.
    pub key: &'a str,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a Localized>,
    /// Applicability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition<'a>>,
    /// The check, for automatic rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Condition<'a>>,
    /// What a reviewer judges, for review rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<&'a Localized>,
    /// Severity.
    pub severity: Severity,
    /// Affected categories.
    pub affects: &'a [Category],
    /// Norm.
    pub norm: &'a Norm,
    /// Pass message.
    pub pass: &'a Localized,
    /// Fail message.
    pub fail: &'a Localized,
    /// Recommended work on failure.
    pub work: Work,
}

impl Checklist {
    /// The compiled form clients render.
    #[must_use]
    pub fn compiled(&self) -> CompiledChecklist<'_> {
        CompiledChecklist {
            id: &self.id,
            version: &self.version,
            sha256: &self.sha256,
            zone: self.zone,
            title: &self.title,
            description: self.description.as_ref(),
            items: self.items.iter().map(item).collect(),
            rules: self.rules.iter().map(rule).collect(),
        }
    }
}

fn options(opts: &[ChoiceOption]) -> Vec<CompiledOption<'_>> {
    opts.iter()
        .map(|o| CompiledOption {
            id: &o.id,
            label: &o.label,
        })
        .collect()
}

fn item(i: &Item) -> CompiledItem<'_> {
    let (unit, range, opts) = match &i.kind {
        ItemKind::Number { unit, min, max } => (Some(*unit), Some([*min, *max]), None),
        // Count bounds are small whole numbers; f64 represents them exactly.
        ItemKind::Count { min, max } => (None, Some([*min as f64, *max as f64]), None),
        ItemKind::Choice(o) | ItemKind::MultiChoice(o) => (None, None, Some(options(o))),
        ItemKind::Boolean | ItemKind::Text | ItemKind::Photo => (None, None, None),
    };
    CompiledItem {
        id: &i.id,
        key: &i.key,
        kind: i.kind.name(),
        question: &i.question,
        hint: i.hint.as_ref(),
        unit,
        range,
        options: opts,
        when: i.when.as_ref().map(Condition::from),
        required: i.required,
        photo: i.photo,
    }
}

fn rule(r: &Rule) -> CompiledRule<'_> {
    let (check, review) = match &r.test {
        RuleTest::Check(e) => (Some(Condition::from(e)), None),
        RuleTest::Review(t) => (None, Some(&**t)),
    };
    CompiledRule {
        id: &r.id,
        key: &r.key,
        title: r.title.as_ref(),
        when: r.when.as_ref().map(Condition::from),
        check,
        review,
        severity: r.severity,
        affects: &r.affects,
        norm: &r.norm,
        pass: &r.pass,
        fail: &r.fail,
        work: r.work,
    }
}
