//! Source files being loaded and the mapping from YAML and expression positions to
//! file:line:column.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_saphyr::Location;
use sha2::{Digest, Sha256};

use super::error::LoadError;
use super::expr::ExprError;

/// Bound on what a checklist file may make the YAML parser do.
const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// One file's text and identity.
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
    pub sha256: String,
}

impl Source {
    pub(crate) fn new(path: PathBuf, text: String) -> Self {
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        Self { path, text, sha256 }
    }

    /// An error at the start of the file (I/O, structure).
    pub(crate) fn error_at_start(&self, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.path.clone(),
            line: 1,
            column: 1,
            message: message.into(),
        }
    }

    /// An error at a YAML node.
    pub(crate) fn error(&self, at: &Location, message: impl Into<String>) -> LoadError {
        let (line, column) = if at.line() == 0 {
            (1, 1)
        } else {
            (at.line(), at.column())
        };
        LoadError {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error inside an expression held in the YAML scalar at `at`; `what` names the
    /// field (`check`, `when`, ...).
    pub(crate) fn expr_error(&self, at: &Location, what: &str, e: &ExprError) -> LoadError {
        let (line, column) = self.position_in_scalar(at, e.pos);
        LoadError {
            file: self.path.clone(),
            line,
            column,
            message: format!("in `{what}`: {}", e.message),
        }
    }

    /// Deserialises the whole file.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, LoadError> {
        if self.text.len() > MAX_FILE_BYTES {
            return Err(self.error_at_start(format!("file larger than {MAX_FILE_BYTES} bytes")));
        }
        let options = serde_saphyr::options! { with_snippet: false };
        serde_saphyr::from_str_with_options(&self.text, options).map_err(|e| {
            let full = e.to_string();
            match e.location() {
                Some(loc) if loc.line() > 0 => {
                    let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
                    let message = full.strip_suffix(&suffix).unwrap_or(&full);
                    self.error(&loc, explain(message))
                }
                _ => self.error_at_start(full),
            }
        })
    }

    /// Maps a character offset inside a scalar's value to a line and column of the file.
    /// Handles plain and quoted scalars, including ones folded over several lines; for
    /// block scalars (`|`, `>`) it points at the scalar's start.
    fn position_in_scalar(&self, at: &Location, offset: usize) -> (u64, u64) {
        let (mut line, mut column) = if at.line() == 0 {
            (1, 1)
        } else {
            (at.line(), at.column())
        };
        let Some(rest) = at
            .span()
            .byte_offset()
            .and_then(|b| usize::try_from(b).ok())
            .and_then(|b| self.text.get(b..))
        else {
            return (line, column + offset as u64);
        };
        let mut chars = rest.chars().peekable();
        let quote = match chars.peek() {
            Some(&q @ ('"' | '\'')) => {
                chars.next();
                column += 1;
                Some(q)
            }
            Some('|' | '>') => return (line, column),
            _ => None,
        };
        let mut remaining = offset;
        while remaining > 0 {
            match chars.next() {
                None => break,
                Some('\n') => {
                    line += 1;
                    column = 1;
                    while chars.peek() == Some(&' ') {
                        chars.next();
                        column += 1;
                    }
                }
                // An escape is one character of the value but several of the line:
                // `\"` and `\n` in double quotes, `''` in single quotes.
                Some('\\') if quote == Some('"') => {
                    let extra = match chars.next() {
                        Some('x') => 3,
                        Some('u') => 5,
                        Some('U') => 9,
                        _ => 1,
                    };
                    column += 1 + extra;
                    for _ in 1..extra {
                        chars.next();
                    }
                }
                Some('\'') if quote == Some('\'') && chars.peek() == Some(&'\'') => {
                    chars.next();
                    column += 2;
                }
                Some(_) => column += 1,
            }
            remaining -= 1;
        }
        (line, column)
    }
}

/// The YAML parser's terse type errors, completed with what the file should hold: every
/// load error must say what was expected.
fn explain(message: &str) -> String {
    const EXPLAINED: [(&str, &str); 6] = [
        ("invalid floating point", "expected a number"),
        ("invalid integer", "expected a whole number"),
        ("invalid boolean", "expected true or false"),
        (
            "expected sequence start",
            "expected a list (`[a, b]` or lines starting with `- `)",
        ),
        (
            "expected mapping start",
            "expected a mapping (`{key: value}` or indented `key: value` lines)",
        ),
        ("expected string scalar", "expected a text (a string)"),
    ];
    match EXPLAINED.iter().find(|(terse, _)| message == *terse) {
        Some((terse, expected)) => format!("{expected} ({terse})"),
        None => message.to_owned(),
    }
}
