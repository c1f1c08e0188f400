//! Order 344н criterion 3: conditions 3.1 and 3.2 from their mappings, P3.3 from the
//! survey, and K3 = w1·P3.1 + w2·P3.2 + w3·P3.3.
//!
//! Unknown stays unknown: a condition whose mapping depends on a missing answer or an
//! unreviewed rule is `unknown`, and an indicator is computed only when every unknown
//! condition could not change it (e.g. five 3.2 conditions met already reach the cap).

use serde::Serialize;

use super::{Condition, Nok, ZeroRespondents};
use crate::checklist::answers::Survey;
use crate::checklist::catalog::Catalog;
use crate::checklist::evaluate::{Resolved, Values};
use crate::checklist::text::Text;
use crate::checklist::types::Outcome;

/// Three-valued state of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tri {
    /// The mapping holds.
    Met,
    /// The mapping does not hold.
    NotMet,
    /// The mapping depends on missing answers or unreviewed rules.
    Unknown,
}

impl From<Option<bool>> for Tri {
    fn from(v: Option<bool>) -> Self {
        match v {
            Some(true) => Tri::Met,
            Some(false) => Tri::NotMet,
            None => Tri::Unknown,
        }
    }
}

/// A rule behind a condition and its outcome.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleOutcome<'a> {
    /// `checklist.rule`.
    pub rule: &'a str,
    /// Its final outcome.
    pub outcome: Outcome,
}

/// One condition (or points entry) and what decided it.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionResult<'a> {
    /// `3.1.1`, ...
    pub id: &'a str,
    /// Its title.
    pub title: Text<'a>,
    /// Met, not met or unknown.
    pub status: Tri,
    /// Points awarded (0 unless met).
    pub points: f64,
    /// The mapping as written.
    pub mapping: &'a str,
    /// Rules the mapping reads, with outcomes.
    pub rules: Vec<RuleOutcome<'a>>,
    /// Items the mapping reads, with answers.
    pub values: Values<'a>,
}

/// Criterion 3 of order 344н.
#[derive(Debug, Clone, Serialize)]
pub struct NokScore<'a> {
    /// Conditions 3.1.1–3.1.5.
    pub conditions_3_1: Vec<ConditionResult<'a>>,
    /// Conditions 3.2.1–3.2.6.
    pub conditions_3_2: Vec<ConditionResult<'a>>,
    /// Indicator 3.1 (0..cap), `null` when unknown conditions could change it.
    pub p3_1: Option<f64>,
    /// Indicator 3.2, capped.
    pub p3_2: Option<f64>,
    /// Indicator 3.3 from the survey.
    pub p3_3: Option<f64>,
    /// K3, rounded to two decimals; `null` when any indicator is unknown.
    pub k3: Option<f64>,
    /// Survey counts used.
    pub survey: Option<Survey>,
    /// Why something is not computable.
    pub notes: Vec<&'static str>,
}

pub(crate) fn conditions<'a>(
    catalog: &'a Catalog,
    list: &'a [Condition],
    r: &Resolved<'a>,
) -> Vec<ConditionResult<'a>> {
    let env = r.env();
    list.iter()
        .map(|c| {
            let status = Tri::from(c.met.eval(&env));
            ConditionResult {
                id: &c.id,
                title: c.title.as_ref(),
                status,
                points: if status == Tri::Met { c.points } else { 0.0 },
                mapping: c.met.source(),
                rules: c
                    .met
                    .rules()
                    .iter()
                    .filter_map(|i| {
                        Some(RuleOutcome {
                            rule: &catalog.rule_at(*i)?.key,
                            outcome: r.outcomes.get(*i as usize).copied()?,
                        })
                    })
                    .collect(),
                values: r.values_of(catalog, c.met.slots()),
            }
        })
        .collect()
}

/// An indicator from conditions: known when its lower and upper bounds agree.
fn indicator(results: &[ConditionResult<'_>], list: &[Condition], cap: f64) -> Option<f64> {
    let low: f64 = results.iter().map(|c| c.points).sum();
    let unknown: f64 = results
        .iter()
        .zip(list)
        .filter(|(c, _)| c.status == Tri::Unknown)
        .map(|(_, d)| d.points)
        .sum();
    let (low, high) = (low.min(cap), (low + unknown).min(cap));
    (low == high).then_some(low)
}

/// Rounds to two decimals, the precision ratings are published with.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn compute<'a>(
    catalog: &'a Catalog,
    nok: &'a Nok,
    r: &Resolved<'a>,
    survey: Option<Survey>,
) -> NokScore<'a> {
    let conditions_3_1 = conditions(catalog, &nok.conditions_3_1, r);
    let conditions_3_2 = conditions(catalog, &nok.conditions_3_2, r);
    let p3_1 = indicator(&conditions_3_1, &nok.conditions_3_1, nok.cap_3_1);
    let p3_2 = indicator(&conditions_3_2, &nok.conditions_3_2, nok.cap_3_2);
    let mut notes = Vec::new();
    if p3_1.is_none() {
        notes.push("3.1: some conditions are unknown (missing answers or rules awaiting review)");
    }
    if p3_2.is_none() {
        notes.push("3.2: some conditions are unknown (missing answers or rules awaiting review)");
    }
    let p3_3 = match survey {
        None => {
            notes.push("3.3: no survey counts");
            None
        }
        Some(s) if s.disabled_respondents == 0 => match nok.zero_respondents {
            ZeroRespondents::NotComputable => {
                notes
                    .push("3.3: no disabled respondents; the methodology makes 3.3 not computable");
                None
            }
            ZeroRespondents::Zero => Some(0.0),
            ZeroRespondents::Full => Some(100.0),
        },
        // Counts are far below 2^53, so the conversions are exact.
        Some(s) => Some(round2(
            s.disabled_satisfied as f64 / s.disabled_respondents as f64 * 100.0,
        )),
    };
    let k3 = match (p3_1, p3_2, p3_3) {
        (Some(a), Some(b), Some(c)) => Some(round2(
            nok.weights[0] * a + nok.weights[1] * b + nok.weights[2] * c,
        )),
        _ => None,
    };
    NokScore {
        conditions_3_1,
        conditions_3_2,
        p3_1,
        p3_2,
        p3_3,
        k3,
        survey,
        notes,
    }
}

/// K3 from indicator values, for tests and the rating: `w·(p3_1, p3_2, p3_3)` rounded.
#[must_use]
pub fn k3(weights: [f64; 3], p: [f64; 3]) -> f64 {
    round2(weights[0] * p[0] + weights[1] * p[1] + weights[2] * p[2])
}
