//! Errors of the engine: load errors carry file, line and column; evaluation errors name
//! the answer or methodology at fault with a stable kebab-case code.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One problem in a checklist or methodology file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    /// The file, as found under the loaded directory.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every problem found while loading a directory; loading never stops at the first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LoadErrors {
    /// The problems, by file and then position.
    pub errors: Vec<LoadError>,
}

impl LoadErrors {
    pub(crate) fn push(&mut self, e: LoadError) {
        self.errors.push(e);
    }

    pub(crate) fn sort(&mut self) {
        self.errors
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        self.errors.dedup();
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// Why one answer value is not acceptable for its item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerError {
    /// `checklist.item`.
    pub key: String,
    /// Stable kebab-case code: `unknown-item`, `wrong-type`, `out-of-range`,
    /// `unknown-option`, `duplicate-option`, `unit-mismatch`, `unknown-unit`,
    /// `not-an-integer`, `not-answerable`.
    pub code: &'static str,
    /// A human explanation naming what was expected.
    pub message: String,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.key, self.message, self.code)
    }
}

/// Why an answer set could not be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The requested methodology does not exist.
    #[error("unknown methodology `{0}`")]
    UnknownMethodology(String),
    /// The requested methodology is a passport mapping, not a scoring methodology.
    #[error("methodology `{0}` is a passport mapping; choose a scoring methodology")]
    NotAScoringMethodology(String),
    /// Some answers do not fit their items.
    #[error("{} invalid answer(s): {}", .0.len(), join(.0))]
    InvalidAnswers(Vec<AnswerError>),
    /// An override names a rule that does not exist.
    #[error("override for unknown rule `{0}`")]
    UnknownRule(String),
}

impl EvalError {
    /// Stable kebab-case code for API errors.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            EvalError::UnknownMethodology(_) => "unknown-methodology",
            EvalError::NotAScoringMethodology(_) => "not-a-scoring-methodology",
            EvalError::InvalidAnswers(_) => "invalid-answers",
            EvalError::UnknownRule(_) => "unknown-rule",
        }
    }
}

fn join(errors: &[AnswerError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
