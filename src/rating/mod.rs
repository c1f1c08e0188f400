//! The yearly rating: criterion 3 of each institution from its sites' approved
//! audits, the other criteria from imports, the overall score, ranks and summary
//! figures. Pure arithmetic over values: no database, no HTTP, no async.
//!
//! Everything is exact to the published two decimals (see `checklist::methodology::nok`
//! for how): a tie in the published figures is a tie in the ranking.

pub mod export;
pub mod gather;
pub mod import;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::checklist::Survey;
use crate::checklist::methodology::nok::{self, Tri, hundredths, indicator_of, mean};
use crate::checklist::methodology::{Nok, Points, Rating, SiteRule};

/// The years a rating may be imported, computed or exported for.
pub const YEARS: RangeInclusive<i32> = 2000..=2100;

/// What an import gives for one institution and year.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imported {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k2: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k4: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k5: Option<f64>,
    /// Indicator id (`1.1` … `5.3`) → value, used where a criterion is not given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indicators: BTreeMap<String, f64>,
    /// Survey counts of disabled respondents, for indicator 3.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<Survey>,
}

impl Imported {
    /// These values with `newer` ones laid over them: what a later import gives
    /// replaces, what it leaves out stays.
    #[must_use]
    pub fn merged(mut self, newer: Imported) -> Self {
        // A criterion the newer file gives, directly or by any of its
        // indicators, is replaced whole: an old direct K2 must not outrank
        // corrected indicators 2.1 … 2.3.
        for (prefix, newer_value) in [
            ("1.", newer.k1),
            ("2.", newer.k2),
            ("4.", newer.k4),
            ("5.", newer.k5),
        ] {
            let mentioned =
                newer_value.is_some() || newer.indicators.keys().any(|k| k.starts_with(prefix));
            if mentioned {
                self.indicators.retain(|k, _| !k.starts_with(prefix));
                let slot = match prefix {
                    "1." => &mut self.k1,
                    "2." => &mut self.k2,
                    "4." => &mut self.k4,
                    _ => &mut self.k5,
                };
                *slot = newer_value;
            }
        }
        self.indicators.extend(newer.indicators);
        self.survey = newer.survey.or(self.survey);
        self
    }

    fn criterion(&self, id: &str) -> Option<f64> {
        match id {
            "K1" => self.k1,
            "K2" => self.k2,
            "K4" => self.k4,
            "K5" => self.k5,
            _ => None,
        }
    }
}

/// One site's part: the conditions (or points entries) its latest approved audit
/// establishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteResult {
    pub site_id: Uuid,
    pub audit_id: Uuid,
    /// The audit's version when the rating was computed.
    pub audit_version: i64,
    /// The checklist release the audit was scored against.
    pub release: String,
    /// The version of the methodology in that release.
    pub methodology_version: String,
    /// Status of each condition, in the order of [`Scheme::condition_ids`].
    #[serde(skip, default)]
    #[schema(ignore)]
    pub statuses: Vec<Tri>,
}

/// An institution and everything its scores come from.
#[derive(Debug, Clone, PartialEq)]
pub struct InstitutionInput {
    pub id: Uuid,
    pub name: String,
    pub sites: Vec<SiteResult>,
    pub imported: Option<Imported>,
    /// The imports the values come from, oldest first.
    pub imports: Vec<Uuid>,
}

/// The scheme a rating is computed with.
#[derive(Debug, Clone, Copy)]
pub enum Scheme<'a> {
    /// Order 344н: K1..K5 and their mean.
    Nok {
        nok: &'a Nok,
        rating: &'a Rating,
        sites: SiteRule,
    },
    /// A points scheme: criterion 3 alone, in points.
    Points { points: &'a Points, sites: SiteRule },
}

impl Scheme<'_> {
    /// The conditions' ids: 3.1 then 3.2 for order 344н, the entries of a points
    /// scheme. [`SiteResult::statuses`] follow this order.
    #[must_use]
    pub fn condition_ids(&self) -> Vec<String> {
        self.conditions().map(|c| c.id().to_owned()).collect()
    }

    fn conditions(&self) -> impl Iterator<Item = &crate::checklist::methodology::Condition> {
        let (a, b): (&[_], &[_]) = match self {
            Self::Nok { nok, .. } => (nok.conditions_3_1(), nok.conditions_3_2()),
            Self::Points { points, .. } => (points.entries(), &[]),
        };
        a.iter().chain(b)
    }

    fn sites(&self) -> SiteRule {
        match self {
            Self::Nok { sites, .. } | Self::Points { sites, .. } => *sites,
        }
    }
}

/// Conditions and their statuses, shown as `{"3.1.1": "met", …}`. The ids are
/// shared by every institution of a rating.
#[derive(Debug, Clone, PartialEq)]
pub struct Statuses {
    ids: Arc<[String]>,
    values: Vec<Tri>,
}

impl Statuses {
    /// The status of condition `id`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<Tri> {
        self.ids
            .iter()
            .position(|i| i == id)
            .and_then(|n| self.values.get(n).copied())
    }
}

impl Serialize for Statuses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.values.len()))?;
        for (id, t) in self.ids.iter().zip(&self.values) {
            map.serialize_entry(id, t)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Statuses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, Tri>::deserialize(d)?;
        let (ids, values): (Vec<String>, Vec<Tri>) = map.into_iter().unzip();
        Ok(Self {
            ids: ids.into(),
            values,
        })
    }
}

/// Criteria K1..K5 of order 344н; `null` where not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Criteria {
    #[serde(rename = "K1")]
    pub k1: Option<f64>,
    #[serde(rename = "K2")]
    pub k2: Option<f64>,
    #[serde(rename = "K3")]
    pub k3: Option<f64>,
    #[serde(rename = "K4")]
    pub k4: Option<f64>,
    #[serde(rename = "K5")]
    pub k5: Option<f64>,
}

impl Criteria {
    /// The criterion with id `K1`..`K5`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<f64> {
        match id {
            "K1" => self.k1,
            "K2" => self.k2,
            "K3" => self.k3,
            "K4" => self.k4,
            "K5" => self.k5,
            _ => None,
        }
    }

    fn slot(&mut self, id: &str) -> Option<&mut Option<f64>> {
        match id {
            "K1" => Some(&mut self.k1),
            "K2" => Some(&mut self.k2),
            "K3" => Some(&mut self.k3),
            "K4" => Some(&mut self.k4),
            "K5" => Some(&mut self.k5),
            _ => None,
        }
    }

    fn all(&self) -> [Option<f64>; 5] {
        [self.k1, self.k2, self.k3, self.k4, self.k5]
    }
}

/// Criterion 3 in detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct K3Detail {
    pub p3_1: Option<f64>,
    pub p3_2: Option<f64>,
    pub p3_3: Option<f64>,
    /// Each 3.1 / 3.2 condition as the sites combine it: `met`, `not_met`, `unknown`.
    #[schema(value_type = Object)]
    pub conditions: Statuses,
}

/// A points scheme's entries as the sites combine them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PointsDetail {
    #[schema(value_type = Object)]
    pub entries: Statuses,
    pub maximum: f64,
}

/// Where an institution's scores come from, so they can be recomputed and explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sources {
    /// The latest approved audit of each site.
    pub audits: Vec<SiteResult>,
    /// The imports of the other criteria and survey counts, oldest first.
    pub imports: Vec<Uuid>,
}

/// One institution in the rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstitutionScore {
    pub institution_id: Uuid,
    pub name: String,
    /// 1 for the best; ties share a rank (1, 1, 3); `null` while incomplete.
    pub rank: Option<u32>,
    /// Sn for order 344н, the points total for a points scheme; `null` while incomplete.
    pub score: Option<f64>,
    /// K1..K5 (order 344н).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<Criteria>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k3: Option<K3Detail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PointsDetail>,
    /// True when every criterion is known.
    pub complete: bool,
    /// What is missing, for people.
    pub missing: Vec<String>,
    pub sources: Sources,
}

/// Maximum, minimum and mean of one figure over the institutions that have it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figures {
    pub count: usize,
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub mean: Option<f64>,
}

impl Figures {
    fn of(values: &[f64]) -> Self {
        Self {
            count: values.len(),
            max: values.iter().copied().reduce(f64::max),
            min: values.iter().copied().reduce(f64::min),
            mean: mean(values),
        }
    }
}

/// Summary figures of a rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    /// Institutions listed.
    pub institutions: usize,
    /// Of them, ranked (complete).
    pub ranked: usize,
    /// Per criterion (`K1`..`K5`; empty for a points scheme).
    pub criteria: BTreeMap<String, Figures>,
    /// The overall score.
    pub score: Figures,
    /// First minus last ranked score.
    pub gap: Option<f64>,
}

/// What every institution of one computation shares.
struct Shape {
    ids: Arc<[String]>,
    points: Vec<f64>,
    /// Conditions of 3.1 come first, this many of them.
    first: usize,
}

/// Scores, ranks and sums up `inputs`. Institutions come out best first; incomplete
/// ones follow, by name, without a rank.
#[must_use]
pub fn compute(
    scheme: Scheme<'_>,
    inputs: Vec<InstitutionInput>,
) -> (Vec<InstitutionScore>, Summary) {
    let shape = Shape {
        ids: scheme.condition_ids().into(),
        points: scheme.conditions().map(|c| c.points()).collect(),
        first: match scheme {
            Scheme::Nok { nok, .. } => nok.conditions_3_1().len(),
            Scheme::Points { points, .. } => points.entries().len(),
        },
    };
    let scores = rank(
        inputs
            .into_iter()
            .map(|i| score_institution(scheme, &shape, i))
            .collect(),
    );
    let summary = summarise(scheme, &scores);
    (scores, summary)
}

fn score_institution(
    scheme: Scheme<'_>,
    shape: &Shape,
    input: InstitutionInput,
) -> InstitutionScore {
    let mut missing = Vec::new();
    let rule = scheme.sites();
    let combined: Vec<Tri> = (0..shape.ids.len())
        .map(|n| {
            rule.combine(
                input
                    .sites
                    .iter()
                    .map(|s| s.statuses.get(n).copied().unwrap_or(Tri::Unknown)),
            )
        })
        .collect();
    let audited = !input.sites.is_empty();
    if !audited {
        missing.push("K3: no approved audit of any site in this year".to_owned());
    }
    let with_points = |range: std::ops::Range<usize>| -> Vec<(Tri, f64)> {
        combined[range.clone()]
            .iter()
            .copied()
            .zip(shape.points[range].iter().copied())
            .collect()
    };
    let statuses = |values: Vec<Tri>| Statuses {
        ids: Arc::clone(&shape.ids),
        values,
    };
    let (criteria, k3, points, score) = match scheme {
        Scheme::Nok { nok, rating, .. } => {
            let (p3_1, p3_2) = if audited {
                (
                    indicator_of(&with_points(0..shape.first), nok.cap_3_1()),
                    indicator_of(&with_points(shape.first..combined.len()), nok.cap_3_2()),
                )
            } else {
                (None, None)
            };
            if audited && (p3_1.is_none() || p3_2.is_none()) {
                missing.push("K3: some conditions are unknown at a site".to_owned());
            }
            let survey = input.imported.as_ref().and_then(|i| i.survey);
            let p3_3 = match nok::p3_3(nok, survey) {
                Ok(p) => Some(p),
                Err(why) => {
                    missing.push(why.to_owned());
                    None
                }
            };
            let k3 = match (p3_1, p3_2, p3_3) {
                (Some(a), Some(b), Some(c)) => Some(nok::k3(nok.weights(), [a, b, c])),
                _ => None,
            };
            let mut criteria = Criteria::default();
            for c in &rating.criteria {
                let value = if c.id == "K3" {
                    k3
                } else {
                    let v = imported_criterion(c, input.imported.as_ref());
                    if v.is_none() {
                        missing.push(format!("{}: not imported", c.id));
                    }
                    v
                };
                if let Some(slot) = criteria.slot(&c.id) {
                    *slot = value;
                }
            }
            let known: Vec<f64> = criteria.all().into_iter().flatten().collect();
            let sn = (known.len() == rating.criteria.len())
                .then(|| mean(&known))
                .flatten();
            let detail = K3Detail {
                p3_1,
                p3_2,
                p3_3,
                conditions: statuses(combined),
            };
            (Some(criteria), Some(detail), None, sn)
        }
        Scheme::Points { points, .. } => {
            let total = (audited && combined.iter().all(|t| *t != Tri::Unknown)).then(|| {
                nok::sum_points(
                    with_points(0..combined.len())
                        .into_iter()
                        .filter(|(t, _)| *t == Tri::Met)
                        .map(|(_, p)| p),
                )
            });
            if audited && total.is_none() {
                missing.push("points: some entries are unknown at a site".to_owned());
            }
            let detail = PointsDetail {
                entries: statuses(combined),
                maximum: points.maximum(),
            };
            (None, None, Some(detail), total)
        }
    };
    InstitutionScore {
        institution_id: input.id,
        name: input.name,
        rank: None,
        complete: score.is_some(),
        score,
        criteria,
        k3,
        points,
        missing,
        sources: Sources {
            audits: input.sites,
            imports: input.imports,
        },
    }
}

/// A criterion from an import: given directly, or from all its indicators (or those
/// of a variant, e.g. K2 without 2.2) with the methodology's weights.
fn imported_criterion(
    c: &crate::checklist::methodology::Criterion,
    imported: Option<&Imported>,
) -> Option<f64> {
    let imported = imported?;
    if let Some(v) = imported.criterion(&c.id) {
        return Some(hundredths(v));
    }
    let values: Option<Vec<f64>> = c
        .indicators
        .iter()
        .map(|i| imported.indicators.get(&i.id).copied())
        .collect();
    if let Some(values) = values {
        let weights: Vec<f64> = c.indicators.iter().map(|i| i.weight).collect();
        return Some(nok::weighted_sum(&weights, &values));
    }
    c.variants.iter().find_map(|v| {
        let values: Option<Vec<f64>> = v
            .weights
            .keys()
            .map(|id| imported.indicators.get(id).copied())
            .collect();
        let weights: Vec<f64> = v.weights.values().copied().collect();
        values.map(|values| nok::weighted_sum(&weights, &values))
    })
}

/// Best first; equal scores share a rank and are listed by name.
fn rank(scores: Vec<InstitutionScore>) -> Vec<InstitutionScore> {
    // Sort positions rather than the large records themselves, then move each
    // record once into its place.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&i, &j| {
        let (a, b) = (&scores[i], &scores[j]);
        match (a.score, b.score) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.name.cmp(&b.name))
        .then(i.cmp(&j))
    });
    let mut slots: Vec<Option<InstitutionScore>> = scores.into_iter().map(Some).collect();
    let mut ranked: Vec<InstitutionScore> = order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect();
    let mut previous: Option<f64> = None;
    let mut current_rank = 0u32;
    for (position, s) in (1u32..).zip(ranked.iter_mut()) {
        let Some(score) = s.score else { break };
        if previous != Some(score) {
            current_rank = position;
            previous = Some(score);
        }
        s.rank = Some(current_rank);
    }
    ranked
}

fn summarise(scheme: Scheme<'_>, scores: &[InstitutionScore]) -> Summary {
    let mut criteria = BTreeMap::new();
    if let Scheme::Nok { rating, .. } = scheme {
        for c in &rating.criteria {
            let values: Vec<f64> = scores
                .iter()
                .filter_map(|s| s.criteria.as_ref().and_then(|k| k.get(&c.id)))
                .collect();
            criteria.insert(c.id.clone(), Figures::of(&values));
        }
    }
    let ranked: Vec<f64> = scores.iter().filter_map(|s| s.score).collect();
    let score = Figures::of(&ranked);
    Summary {
        institutions: scores.len(),
        ranked: ranked.len(),
        criteria,
        gap: score.max.zip(score.min).map(|(hi, lo)| hundredths(hi - lo)),
        score,
    }
}

#[cfg(test)]
mod tests;
