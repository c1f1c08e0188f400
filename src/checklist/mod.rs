//! The checklist rules engine: YAML checklists and methodologies, a small typed expression
//! language, evaluation with three-valued logic, order 344н criterion 3 scoring and order
//! 627 passport statuses.
//!
//! Pure: no database, no HTTP, no async, no global state. Load a [`Catalog`] once, then
//! [`evaluate`] answer sets against it. Numbers from norms live in the YAML under
//! `checklists/`, never here.

mod answers;
mod catalog;
mod cli;
mod compiled;
mod error;
mod evaluate;
mod expr;
mod loader;
pub mod methodology;
mod model;
mod rendered;
mod report;
mod schema;
mod source;
mod text;
mod types;
mod unit;

/// Version of the engine, recorded in every evaluation so results can be recomputed.
/// 1.1.0: P3.3 and K3 computed exactly and rounded half up (1.0.0 rounded a floating-point
/// sum, so e.g. 23 of 160 respondents gave P3.3 = 14.37 instead of 14.38).
pub const ENGINE_VERSION: &str = "1.1.0";

pub use answers::{AnswerSet, MAX_TEXT_CHARS, Survey, validate_answer};
pub use catalog::{Catalog, CatalogFile};
pub use cli::{CliError, Format, LintReport, lint, score, show};
pub use compiled::{CompiledChecklist, CompiledItem, CompiledOption, CompiledRule, Condition};
pub use error::{AnswerError, EvalError, LoadError, LoadErrors};
pub use evaluate::{
    Completeness, Evaluation, Missing, Override, Overrides, RuleResult, Summary, Values,
    VersionRef, evaluate, missing_for_submission,
};
pub use expr::{Expr, ExprError, check_syntax};
pub use methodology::Methodology;
pub use model::{Checklist, ChoiceOption, Item, ItemKind, Rule, RuleTest};
pub use rendered::{JsonObject, Raw, Rendered};
pub use report::{render_checklist, render_evaluation};
pub use schema::Norm;
pub use text::Localized;
pub use types::{Category, Outcome, PhotoPolicy, Severity, Status, Verdict, Work, Zone};
pub use unit::{Dimension, Unit};

/// The checklists this repository ships and their example audits, for unit tests.
#[cfg(test)]
pub(crate) mod shipped {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::{AnswerSet, Catalog};

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checklists")
    }

    /// The shipped catalog.
    pub(crate) fn catalog() -> Catalog {
        Catalog::load_dir(&dir()).unwrap()
    }

    /// The example audit `checklists/examples/{name}.json`.
    pub(crate) fn example(name: &str) -> AnswerSet {
        let path = dir().join("examples").join(format!("{name}.json"));
        AnswerSet::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}
