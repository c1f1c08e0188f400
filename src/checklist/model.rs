//! Checked, compiled checklists: what the loader produces and evaluation reads.
//! Items and rules know their global answer slot and rule index, so evaluation walks
//! vectors instead of looking names up.

use std::path::{Path, PathBuf};

use super::evaluate::ResultHeads;
use super::expr::Expr;
use super::rendered::Rendered;
use super::schema::Norm;
use super::text::Localized;
use super::types::{Category, PhotoPolicy, Severity, Work, Zone};
use super::unit::Unit;

/// A loaded checklist.
#[derive(Debug, Clone)]
pub struct Checklist {
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) zone: Zone,
    pub(crate) title: Localized,
    pub(crate) description: Option<Localized>,
    pub(crate) items: Vec<Item>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) sha256: String,
    pub(crate) file: PathBuf,
    /// Every rule id in the file, including rules rejected by checks.
    pub(crate) rule_ids_declared: Vec<String>,
}

impl Checklist {
    /// The checklist id (`entrance`).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its semantic version.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Its order 627 zone.
    #[must_use]
    pub fn zone(&self) -> Zone {
        self.zone
    }
    /// Its title in Russian and English.
    #[must_use]
    pub fn title(&self) -> &Localized {
        &self.title
    }
    /// An optional description.
    #[must_use]
    pub fn description(&self) -> Option<&Localized> {
        self.description.as_ref()
    }
    /// Lower-case hex SHA-256 of the source file's bytes: the identity of this version.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The file it was loaded from.
    #[must_use]
    pub fn file(&self) -> &Path {
        &self.file
    }
    /// Its items in file order.
    #[must_use]
    pub fn items(&self) -> &[Item] {
        &self.items
    }
    /// Its rules in file order.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    /// The item with this (bare) id.
    #[must_use]
    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// One question of a checklist.
#[derive(Debug, Clone)]
pub struct Item {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) question: Localized,
    pub(crate) hint: Option<Localized>,
    pub(crate) kind: ItemKind,
    pub(crate) when: Option<Expr>,
    pub(crate) required: bool,
    pub(crate) photo: PhotoPolicy,
    pub(crate) slot: u32,
    /// Rules whose check reads this item: a failure of any of them makes a
    /// `required_if_fail` photo necessary.
    pub(crate) checked_by: Vec<u32>,
}

impl Item {
    /// The bare id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
    /// `checklist.item`, the key used in answers.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The question.
    #[must_use]
    pub fn question(&self) -> &Localized {
        &self.question
    }
    /// The answer type.
    #[must_use]
    pub fn kind(&self) -> &ItemKind {
        &self.kind
    }
    /// Whether an answer is needed before submission (when the item applies).
    #[must_use]
    pub fn required(&self) -> bool {
        self.required
    }
    /// When a photo is needed.
    #[must_use]
    pub fn photo(&self) -> PhotoPolicy {
        self.photo
    }
    /// The applicability condition as written.
    #[must_use]
    pub fn when(&self) -> Option<&str> {
        self.when.as_ref().map(Expr::source)
    }
}

/// The answer type of an item.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// Yes or no.
    Boolean,
    /// A measurement in `unit`, between `min` and `max` inclusive (in that unit).
    Number {
        /// The unit answers are given in.
        unit: Unit,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// A whole number between `min` and `max` inclusive.
    Count {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// One option.
    Choice(Vec<ChoiceOption>),
    /// Any number of options.
    MultiChoice(Vec<ChoiceOption>),
    /// Free text (notes); never read by rules except through `answered`.
    Text,
    /// A slot that only holds photos.
    Photo,
}

impl ItemKind {
    /// The type name used in YAML (`boolean`, `number`, ...).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            ItemKind::Boolean => "boolean",
            ItemKind::Number { .. } => "number",
            ItemKind::Count { .. } => "count",
            ItemKind::Choice(_) => "choice",
            ItemKind::MultiChoice(_) => "multi_choice",
            ItemKind::Text => "text",
            ItemKind::Photo => "photo",
        }
    }
}

/// An option of a choice item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceOption {
    /// The id used in answers and expressions.
    pub id: String,
    /// The label shown to the volunteer.
    pub label: Localized,
}

/// How a rule decides.
#[derive(Debug, Clone)]
pub enum RuleTest {
    /// An expression over the answers.
    Check(Expr),
    /// A reviewer judges; the text says what to look at.
    Review(Rendered<Localized>),
}

/// One rule of a checklist.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) title: Option<Localized>,
    pub(crate) when: Option<Expr>,
    pub(crate) test: RuleTest,
    pub(crate) severity: Severity,
    pub(crate) affects: Rendered<Vec<Category>>,
    pub(crate) norm: Rendered<Norm>,
    pub(crate) pass: Rendered<Localized>,
    pub(crate) fail: Rendered<Localized>,
    pub(crate) work: Work,
    pub(crate) zone: Zone,
    /// Slots the rule reads (its `when` and `check`), for "the values that decided it".
    pub(crate) reads: Vec<u32>,
    /// Its results as JSON up to their values, made on first use.
    pub(crate) heads: ResultHeads,
}

impl Rule {
    /// The bare id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
    /// `checklist.rule`, the key used by overrides and methodologies.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
    /// Severity of a failure.
    #[must_use]
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// Categories of disabled people a failure affects.
    #[must_use]
    pub fn affects(&self) -> &[Category] {
        &self.affects
    }
    /// The norm the rule comes from.
    #[must_use]
    pub fn norm(&self) -> &Norm {
        &self.norm
    }
    /// The zone of its checklist.
    #[must_use]
    pub fn zone(&self) -> Zone {
        self.zone
    }
    /// How the rule decides.
    #[must_use]
    pub fn test(&self) -> &RuleTest {
        &self.test
    }
}
