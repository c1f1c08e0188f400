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
use crate::checklist::rendered::Raw;
use crate::checklist::text::Localized;
use crate::checklist::types::Outcome;

/// Three-valued state of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    pub title: Raw<'a, Localized>,
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
    /// Indicator 3.3 from the survey, rounded half up to two decimals.
    pub p3_3: Option<f64>,
    /// K3, computed exactly and rounded half up to two decimals; `null` when any
    /// indicator is unknown.
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
                title: c.title.raw(),
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
    let statuses: Vec<(Tri, f64)> = results
        .iter()
        .zip(list)
        .map(|(c, d)| (c.status, d.points))
        .collect();
    indicator_of(&statuses, cap)
}

/// An indicator from `(status, points)` of its conditions, capped: known when the
/// unknown conditions cannot change it (their points would all go over the cap, or
/// there are none), `None` otherwise.
#[must_use]
pub fn indicator_of(statuses: &[(Tri, f64)], cap: f64) -> Option<f64> {
    let met = statuses
        .iter()
        .filter(|(s, _)| *s == Tri::Met)
        .map(|(_, p)| *p);
    let unknown = statuses
        .iter()
        .filter(|(s, _)| *s == Tri::Unknown)
        .map(|(_, p)| *p);
    let cap = to_units(cap, HUNDREDTHS);
    let low = sum_units(met, HUNDREDTHS);
    let high = low.saturating_add(sum_units(unknown, HUNDREDTHS));
    let (low, high) = (low.min(cap), high.min(cap));
    (low == high).then(|| from_units(low, HUNDREDTHS))
}

// Exact arithmetic. Scores are published with two decimals and must come out exactly:
// 0.3·60 + 0.4·80 + 0.3·70 is 70.99999999999999 in floating point, and 23 of 160 is
// 14.374999999999998 %, which rounds the wrong way. So indicators are held in integer
// hundredths, weights in integer millionths, P3.3 is computed from the counts, and each
// result is rounded once, half up. The results are the doubles nearest to those decimals.

/// Indicator values are published in hundredths.
const HUNDREDTHS: i128 = 100;
/// Weights are read to six decimals (0.3, 0.25, 0.125 are exact).
const MILLIONTHS: i128 = 1_000_000;

/// `x` in units of `1/scale`, rounded half away from zero; saturates for absurd values
/// (a YAML cap of 1e300), so no input can overflow.
fn to_units(x: f64, scale: i128) -> i128 {
    // `as` from f64 saturates and maps NaN to 0; loaders reject non-finite numbers anyway.
    (x * scale as f64).round() as i128
}

fn from_units(units: i128, scale: i128) -> f64 {
    // Scores are far below 2^53, so both conversions are exact and the division rounds once.
    units as f64 / scale as f64
}

fn sum_units(xs: impl Iterator<Item = f64>, scale: i128) -> i128 {
    xs.map(|x| to_units(x, scale)).fold(0, i128::saturating_add)
}

/// `n / d` rounded half up, for `n >= 0`, `d > 0`.
fn div_half_up(n: i128, d: i128) -> i128 {
    n.saturating_add(d / 2).div_euclid(d.max(1))
}

/// Sum of points (a points scheme), exact to six decimals: 0.1 + 0.2 is 0.3.
pub(crate) fn sum_points(xs: impl Iterator<Item = f64>) -> f64 {
    from_units(sum_units(xs, MILLIONTHS), MILLIONTHS)
}

/// P3.3 = satisfied / respondents × 100, in hundredths rounded half up.
fn share(satisfied: u64, respondents: u64) -> f64 {
    // u64 · 20 000 fits in u128; respondents > 0 here, `max(1)` keeps it obvious.
    let (s, n) = (u128::from(satisfied), u128::from(respondents).max(1));
    let hundredths = (s * 20_000 + n) / (2 * n);
    from_units(i128::try_from(hundredths).unwrap_or(i128::MAX), HUNDREDTHS)
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
    let p3_3 = match p3_3(nok, survey) {
        Ok(p) => Some(p),
        Err(why) => {
            notes.push(why);
            None
        }
    };
    let k3 = match (p3_1, p3_2, p3_3) {
        (Some(a), Some(b), Some(c)) => Some(k3(nok.weights, [a, b, c])),
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

/// Indicator 3.3 from survey counts, under the methodology's rule for surveys with no
/// disabled respondents.
///
/// # Errors
/// Why 3.3 is not computable: no counts, or none of the respondents disabled and the
/// methodology says so.
pub fn p3_3(nok: &Nok, survey: Option<Survey>) -> Result<f64, &'static str> {
    match survey {
        None => Err("3.3: no survey counts"),
        Some(s) if s.disabled_respondents == 0 => match nok.zero_respondents {
            ZeroRespondents::NotComputable => {
                Err("3.3: no disabled respondents; the methodology makes 3.3 not computable")
            }
            ZeroRespondents::Zero => Ok(0.0),
            ZeroRespondents::Full => Ok(100.0),
        },
        Some(s) => Ok(share(s.disabled_satisfied, s.disabled_respondents)),
    }
}

/// `Σ wᵢ·xᵢ` with the values taken to two decimals and the weights to six, computed
/// exactly and rounded half up to two decimals: a criterion from its indicators.
#[must_use]
pub fn weighted_sum(weights: &[f64], values: &[f64]) -> f64 {
    let sum = weights
        .iter()
        .zip(values)
        .map(|(w, x)| to_units(*w, MILLIONTHS).saturating_mul(to_units(*x, HUNDREDTHS)))
        .fold(0, i128::saturating_add);
    from_units(div_half_up(sum, MILLIONTHS), HUNDREDTHS)
}

/// The arithmetic mean of values taken to two decimals, rounded half up to two
/// decimals (`Sn = (K1+…+K5)/5`, regional means); `None` for no values.
#[must_use]
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum = sum_units(values.iter().copied(), HUNDREDTHS);
    let n = i128::try_from(values.len()).unwrap_or(i128::MAX);
    let rounded = if sum >= 0 {
        div_half_up(sum, n)
    } else {
        -div_half_up(-sum, n)
    };
    Some(from_units(rounded, HUNDREDTHS))
}

/// A value rounded half up to two decimals, as scores are published.
#[must_use]
pub fn hundredths(x: f64) -> f64 {
    from_units(to_units(x, HUNDREDTHS), HUNDREDTHS)
}

/// K3 from indicator values, for tests and the rating: `w·(p3_1, p3_2, p3_3)` with the
/// indicators taken to two decimals and the weights to six, computed exactly and rounded
/// half up to two decimals (`k3([0.3, 0.4, 0.3], [60, 80, 70])` is exactly 71).
#[must_use]
pub fn k3(weights: [f64; 3], p: [f64; 3]) -> f64 {
    weighted_sum(&weights, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: P3.3 was `(s / n * 100 * 100).round() / 100` in floating point, so
    /// 23 of 160 (exactly 14.375 %) gave 14.37.
    #[test]
    fn shares_round_half_up_exactly() {
        assert_eq!(share(23, 160), 14.38);
        assert_eq!(share(7, 10), 70.0);
        assert_eq!(share(1, 3), 33.33);
        assert_eq!(share(2, 3), 66.67);
        assert_eq!(share(u64::MAX, u64::MAX), 100.0);
    }

    /// Regression: K3 was rounded from a floating-point sum, so 0.3 · 46.15 = 13.845
    /// (13.844999999999999 in floating point) gave 13.84.
    #[test]
    fn k3_is_exact_and_rounds_half_up() {
        assert_eq!(k3([0.3, 0.4, 0.3], [60.0, 80.0, 70.0]), 71.0);
        assert_eq!(k3([0.3, 0.4, 0.3], [0.0, 0.0, 46.15]), 13.85);
        assert_eq!(k3([0.3, 0.4, 0.3], [100.0, 100.0, 100.0]), 100.0);
        assert!(k3([0.3, 0.4, 0.3], [1e300, 0.0, 0.0]) > 0.0);
        assert_eq!(sum_points([0.1, 0.2].into_iter()), 0.3);
    }

    #[test]
    fn means_are_exact_and_round_half_up() {
        assert_eq!(mean(&[71.0, 80.5, 90.25, 60.0, 75.0]), Some(75.35));
        // 0.1 + 0.2 + 0.3 over 3 is 0.2 exactly, not 0.20000000000000004.
        assert_eq!(mean(&[0.1, 0.2, 0.3]), Some(0.2));
        // 100.01 / 2 = 50.005 rounds up.
        assert_eq!(mean(&[100.0, 0.01]), Some(50.01));
        assert_eq!(mean(&[]), None);
        assert_eq!(weighted_sum(&[0.5, 0.5], &[70.0, 75.55]), 72.78);
    }

    #[test]
    fn unknown_conditions_leave_an_indicator_unknown_unless_capped() {
        let s = |t: Tri| (t, 20.0);
        assert_eq!(
            indicator_of(&[s(Tri::Met), s(Tri::NotMet), s(Tri::Met)], 100.0),
            Some(40.0)
        );
        assert_eq!(indicator_of(&[s(Tri::Met), s(Tri::Unknown)], 100.0), None);
        let five_met: Vec<_> = std::iter::repeat_n(s(Tri::Met), 5).collect();
        let mut six = five_met.clone();
        six.push(s(Tri::Unknown));
        assert_eq!(
            indicator_of(&six, 100.0),
            Some(100.0),
            "the cap makes the unknown moot"
        );
    }
}
