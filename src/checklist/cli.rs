//! What the command line calls: lint a directory, show a checklist, score answers.
//! These return strings and flags; printing and exit codes belong to `main`.

use std::path::Path;
use std::str::FromStr;

use super::answers::AnswerSet;
use super::catalog::Catalog;
use super::error::EvalError;
use super::evaluate::{Overrides, evaluate};
use super::report::{render_checklist, render_evaluation};

/// Output format of `show` and `score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Pretty-printed JSON.
    #[default]
    Json,
    /// Text for people.
    Text,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            other => Err(format!("unknown format `{other}`; expected json or text")),
        }
    }
}

/// Result of linting a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintReport {
    /// True when everything loaded and cross-checked.
    pub ok: bool,
    /// A summary when clean; every error as `file:line:column: message` otherwise.
    pub text: String,
}

/// Errors of `show` and `score`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No checklist has this id.
    #[error("unknown checklist `{0}`")]
    UnknownChecklist(String),
    /// The answers file is not valid answers JSON.
    #[error("invalid answers JSON: {0}")]
    AnswersJson(#[from] serde_json::Error),
    /// Scoring failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// Loads and cross-checks every checklist and methodology of `dir`.
#[must_use]
pub fn lint(dir: &Path) -> LintReport {
    match Catalog::load_dir(dir) {
        Ok(c) => {
            let kinds: Vec<String> = c
                .methodologies()
                .iter()
                .map(|m| format!("{} ({})", m.id(), m.kind_name()))
                .collect();
            LintReport {
                ok: true,
                text: format!(
                    "ok: {} checklists, {} items, {} rules; methodologies: {}; default: {}",
                    c.checklists().len(),
                    c.item_count(),
                    c.rule_count(),
                    kinds.join(", "),
                    c.default_methodology().id()
                ),
            }
        }
        Err(e) => LintReport {
            ok: false,
            text: format!("{e}\n{} error(s)", e.errors.len()),
        },
    }
}

/// The compiled form of checklist `id`.
///
/// # Errors
/// [`CliError::UnknownChecklist`].
pub fn show(catalog: &Catalog, id: &str, format: Format) -> Result<String, CliError> {
    let c = catalog
        .checklist(id)
        .ok_or_else(|| CliError::UnknownChecklist(id.to_owned()))?;
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(&c.compiled())?,
        Format::Text => render_checklist(c),
    })
}

/// Scores an answers JSON document (the content of `--answers FILE`).
///
/// # Errors
/// [`CliError::AnswersJson`] when it does not parse, [`CliError::Eval`] when it does not
/// fit the catalog or the methodology is unknown.
pub fn score(
    catalog: &Catalog,
    answers_json: &str,
    methodology: Option<&str>,
    format: Format,
) -> Result<String, CliError> {
    let answers = AnswerSet::from_json(answers_json)?;
    let overrides = Overrides::new();
    let e = evaluate(catalog, methodology, &answers, &overrides)?;
    Ok(match format {
        Format::Json => pretty(&serde_json::to_string(&e)?),
        Format::Text => render_evaluation(&e),
    })
}

/// Re-indents compact JSON as serde_json's pretty printer does (two spaces a level, `": "`
/// after keys, `{}` and `[]` when empty), adding whitespace only: strings, numbers and the
/// order of keys stay as serde_json wrote them. An evaluation's rendered texts are copied as
/// they were rendered, compact, so a pretty printer given the evaluation itself would leave
/// them on one line.
fn pretty(compact: &str) -> String {
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0_usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = compact.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                if chars.next_if_eq(&close).is_some() {
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn re_indents_as_serde_json_prints_pretty() {
        let value = serde_json::json!({
            "empty_object": {},
            "empty_list": [],
            "nested": [{"a": [1, 2.5, -0.000_001, 1.234_567_890_123_456_7e300]}, [[]], null],
            "text": "Пандус: «нет», {скобки} [и] \"кавычки\" \\ , : \n\t\u{1}",
            "flags": [true, false],
            "trailing_backslash": ["\\", "a\\\"b\\"],
            "k": {"inner": {"deeper": "x"}}
        });
        let compact = serde_json::to_string(&value).unwrap();
        assert_eq!(
            pretty(&compact),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }
}
