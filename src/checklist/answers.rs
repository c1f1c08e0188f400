//! Answers as the API and the `score` command accept them, and their validation against
//! items. Raw answers are kept as given (with their unit); converted values exist only
//! inside evaluation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::catalog::Catalog;
use super::error::AnswerError;
use super::expr::Value;
use super::model::{ChoiceOption, Item, ItemKind};
use super::unit::Unit;

/// Relative tolerance of range checks on number answers, as in expression comparisons.
const RANGE_TOLERANCE: f64 = 1e-9;

/// Longest text answer accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// One audit's answers: `{"methodology": "nok-344n", "answers": {"checklist.item": value},
/// "survey": {"disabled_respondents": N, "disabled_satisfied": M}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSet {
    /// The methodology to score with; the catalog's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methodology: Option<String>,
    /// Answers keyed `checklist_id.item_id`; `null` means unanswered.
    #[serde(default)]
    pub answers: BTreeMap<String, Json>,
    /// Survey counts for indicator 3.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<Survey>,
}

/// Survey counts of disabled respondents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    /// Disabled people who answered the survey.
    pub disabled_respondents: u64,
    /// Of them, those satisfied with accessibility.
    pub disabled_satisfied: u64,
}

impl AnswerSet {
    /// Parses the answers JSON.
    ///
    /// # Errors
    /// Returns the JSON error (syntax, unknown top-level key, wrong shape).
    pub fn from_json(json: &str) -> Result<AnswerSet, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// Checks one answer value for the item `key` (`checklist.item`): type, unit, range and
/// options. `null` is always accepted: it clears the answer.
///
/// # Errors
/// Returns an [`AnswerError`] with a stable code: `unknown-item`, `wrong-type`,
/// `out-of-range`, `not-an-integer`, `unknown-option`, `duplicate-option`,
/// `unknown-unit`, `unit-mismatch`, `too-long` or `not-answerable`.
pub fn validate_answer(catalog: &Catalog, key: &str, value: &Json) -> Result<(), AnswerError> {
    let item = catalog.item(key).ok_or_else(|| AnswerError {
        key: key.to_owned(),
        code: "unknown-item",
        message: format!("no checklist item `{key}`; keys are `checklist_id.item_id`"),
    })?;
    convert(item, value).map(|_| ())
}

/// Answers by slot: converted values for evaluation, raw JSON for reporting.
pub(crate) type Slots<'a> = (Vec<Value>, Vec<Option<&'a Json>>);

/// Converts every answer into its slot; collects all problems.
pub(crate) fn resolve<'a>(
    catalog: &Catalog,
    set: &'a AnswerSet,
) -> Result<Slots<'a>, Vec<AnswerError>> {
    let mut values = vec![Value::Unknown; catalog.item_count()];
    let mut raw = vec![None; catalog.item_count()];
    let mut errors = Vec::new();
    for (key, json) in &set.answers {
        let Some(&slot) = catalog.item_index.get(key.as_str()) else {
            errors.push(AnswerError {
                key: key.clone(),
                code: "unknown-item",
                message: format!("no checklist item `{key}`"),
            });
            continue;
        };
        let Some(item) = catalog.item_at(slot) else {
            continue;
        };
        match convert(item, json) {
            Ok(v) => {
                values[slot as usize] = v;
                if v != Value::Unknown {
                    raw[slot as usize] = Some(json);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(s) = set.survey
        && s.disabled_satisfied > s.disabled_respondents
    {
        errors.push(AnswerError {
            key: "survey.disabled_satisfied".into(),
            code: "out-of-range",
            message: format!(
                "{} satisfied out of {} respondents",
                s.disabled_satisfied, s.disabled_respondents
            ),
        });
    }
    if errors.is_empty() {
        Ok((values, raw))
    } else {
        Err(errors)
    }
}

fn convert(item: &Item, json: &Json) -> Result<Value, AnswerError> {
    let err = |code: &'static str, message: String| AnswerError {
        key: item.key.clone(),
        code,
        message,
    };
    let wrong = |expected: &str| {
        err(
            "wrong-type",
            format!("expected {expected}, found {}", describe(json)),
        )
    };
    if json.is_null() {
        return Ok(Value::Unknown);
    }
    match &item.kind {
        ItemKind::Boolean => json
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| wrong("true or false")),
        ItemKind::Number { unit, min, max } => {
            let v = number_in_unit(json, *unit).map_err(|(code, m)| err(code, m))?;
            // A converted answer may carry rounding noise (0.07 m is 7.000000000000001 cm):
            // the bounds tolerate it as expression comparisons do.
            let tolerance = RANGE_TOLERANCE * min.abs().max(max.abs()).max(1.0);
            if !v.is_finite() || v < *min - tolerance || v > *max + tolerance {
                return Err(err(
                    "out-of-range",
                    format!("{v} {unit} is outside [{min}, {max}] {unit}"),
                ));
            }
            Ok(Value::Num(unit.to_base(v)))
        }
        ItemKind::Count { min, max } => {
            let n = json.as_f64().ok_or_else(|| wrong("a whole number"))?;
            if n.fract() != 0.0 {
                return Err(err(
                    "not-an-integer",
                    format!("expected a whole number, found {n}"),
                ));
            }
            // `as` saturates; the range check below rejects anything huge.
            let i = n as i64;
            if i < *min || i > *max {
                return Err(err(
                    "out-of-range",
                    format!("{i} is outside [{min}, {max}]"),
                ));
            }
            Ok(Value::Num(n))
        }
        ItemKind::Choice(options) => {
            let s = json.as_str().ok_or_else(|| wrong("an option id string"))?;
            let i = option_index(options, s)
                .ok_or_else(|| err("unknown-option", unknown_option(options, s)))?;
            Ok(Value::Choice(i))
        }
        ItemKind::MultiChoice(options) => {
            let list = json
                .as_array()
                .ok_or_else(|| wrong("a list of option ids"))?;
            let mut mask = 0u64;
            for entry in list {
                let s = entry
                    .as_str()
                    .ok_or_else(|| wrong("a list of option id strings"))?;
                let i = option_index(options, s)
                    .ok_or_else(|| err("unknown-option", unknown_option(options, s)))?;
                let bit = 1u64 << i;
                if mask & bit != 0 {
                    return Err(err(
                        "duplicate-option",
                        format!("option \"{s}\" listed twice"),
                    ));
                }
                mask |= bit;
            }
            Ok(Value::Multi(mask))
        }
        ItemKind::Text => {
            let s = json.as_str().ok_or_else(|| wrong("a string"))?;
            if s.chars().count() > MAX_TEXT_CHARS {
                return Err(err(
                    "too-long",
                    format!("text longer than {MAX_TEXT_CHARS} characters"),
                ));
            }
            Ok(Value::Text)
        }
        ItemKind::Photo => Err(err(
            "not-answerable",
            "this is a photo slot: attach photos, not an answer".into(),
        )),
    }
}

/// A number answer: a bare number in the item's unit, or `{"value": n, "unit": "cm"}`
/// converted to the item's unit.
fn number_in_unit(json: &Json, unit: Unit) -> Result<f64, (&'static str, String)> {
    if let Some(v) = json.as_f64() {
        return Ok(v);
    }
    let Some(obj) = json.as_object() else {
        return Err((
            "wrong-type",
            format!(
                "expected a number in {unit} or {{\"value\": n, \"unit\": \"{unit}\"}}, found {}",
                describe(json)
            ),
        ));
    };
    if let Some(extra) = obj.keys().find(|k| *k != "value" && *k != "unit") {
        return Err((
            "wrong-type",
            format!("unexpected key `{extra}`; expected `value` and `unit`"),
        ));
    }
    let value = obj
        .get("value")
        .and_then(Json::as_f64)
        .ok_or(("wrong-type", "expected a numeric `value`".to_owned()))?;
    let symbol = obj
        .get("unit")
        .and_then(Json::as_str)
        .ok_or(("wrong-type", "expected a `unit` string".to_owned()))?;
    let given = Unit::from_symbol(symbol).ok_or_else(|| {
        (
            "unknown-unit",
            format!(
                "unknown unit `{symbol}`; expected one of {}",
                Unit::ALL.map(Unit::symbol).join(", ")
            ),
        )
    })?;
    unit.convert_from(value, given).ok_or_else(|| {
        (
            "unit-mismatch",
            format!("the answer is in {given} but this item is measured in {unit}"),
        )
    })
}

fn option_index(options: &[ChoiceOption], id: &str) -> Option<u8> {
    options
        .iter()
        .position(|o| o.id == id)
        .and_then(|i| u8::try_from(i).ok())
}

fn unknown_option(options: &[ChoiceOption], s: &str) -> String {
    let ids: Vec<&str> = options.iter().map(|o| o.id.as_str()).collect();
    format!("unknown option \"{s}\"; expected one of {}", ids.join(", "))
}

fn describe(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("boolean {b}"),
        Json::Number(n) => format!("number {n}"),
        Json::String(_) => "a string".into(),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "an object".into(),
    }
}
