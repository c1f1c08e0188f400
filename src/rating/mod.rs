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

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::checklist::Survey;
use crate::checklist::methodology::nok::{self, Tri, hundredths, indicator_of, mean};
use crate::checklist::methodology::{Nok, Points, Rating, SiteRule};

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
        self.k1 = newer.k1.or(self.k1);
        self.k2 = newer.k2.or(self.k2);
        self.k4 = newer.k4.or(self.k4);
        self.k5 = newer.k5.or(self.k5);
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
/// establishes, by id.
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
    #[serde(skip, default)]
    #[schema(ignore)]
    pub statuses: BTreeMap<String, Tri>,
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

/// Criterion 3 in detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct K3Detail {
    pub p3_1: Option<f64>,
    pub p3_2: Option<f64>,
    pub p3_3: Option<f64>,
    /// Each 3.1 / 3.2 condition as the sites combine it: `met`, `not_met`, `unknown`.
    #[schema(value_type = Object)]
    pub conditions: BTreeMap<String, Tri>,
}

/// A points scheme's entries as the sites combine them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PointsDetail {
    #[schema(value_type = Object)]
    pub entries: BTreeMap<String, Tri>,
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
    /// K1..K5 (order 344н); `null` where missing.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub criteria: BTreeMap<String, Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k3: Option<K3Detail>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// Per criterion (`K1`..`K5`, or `points`).
    pub criteria: BTreeMap<String, Figures>,
    /// The overall score.
    pub score: Figures,
    /// First minus last ranked score.
    pub gap: Option<f64>,
}

/// Scores, ranks and sums up `inputs`. Institutions come out best first; incomplete
/// ones follow, by name, without a rank.
#[must_use]
pub fn compute(
    scheme: Scheme<'_>,
    inputs: Vec<InstitutionInput>,
) -> (Vec<InstitutionScore>, Summary) {
    let mut scores: Vec<InstitutionScore> = inputs
        .into_iter()
        .map(|i| score_institution(scheme, i))
        .collect();
    rank(&mut scores);
    let summary = summarise(scheme, &scores);
    (scores, summary)
}

fn score_institution(scheme: Scheme<'_>, input: InstitutionInput) -> InstitutionScore {
    let mut missing = Vec::new();
    let statuses = |rule: SiteRule, id: &str| {
        rule.combine(
            input
                .sites
                .iter()
                .map(|s| s.statuses.get(id).copied().unwrap_or(Tri::Unknown)),
        )
    };
    if input.sites.is_empty() {
        missing.push("K3: no approved audit of any site in this year".to_owned());
    }
    let (criteria, k3, points, score) = match scheme {
        Scheme::Nok { nok, rating, sites } => {
            let c31: Vec<(String, Tri, f64)> = nok
                .conditions_3_1()
                .iter()
                .map(|c| (c.id().to_owned(), statuses(sites, c.id()), c.points()))
                .collect();
            let c32: Vec<(String, Tri, f64)> = nok
                .conditions_3_2()
                .iter()
                .map(|c| (c.id().to_owned(), statuses(sites, c.id()), c.points()))
                .collect();
            let pairs = |v: &[(String, Tri, f64)]| -> Vec<(Tri, f64)> {
                v.iter().map(|(_, t, p)| (*t, *p)).collect()
            };
            let (p3_1, p3_2) = if input.sites.is_empty() {
                (None, None)
            } else {
                (
                    indicator_of(&pairs(&c31), nok.cap_3_1()),
                    indicator_of(&pairs(&c32), nok.cap_3_2()),
                )
            };
            if !input.sites.is_empty() && (p3_1.is_none() || p3_2.is_none()) {
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
            let mut criteria = BTreeMap::new();
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
                criteria.insert(c.id.clone(), value);
            }
            let known: Vec<f64> = criteria.values().filter_map(|v| *v).collect();
            let sn = (known.len() == criteria.len())
                .then(|| mean(&known))
                .flatten();
            let detail = K3Detail {
                p3_1,
                p3_2,
                p3_3,
                conditions: c31
                    .into_iter()
                    .chain(c32)
                    .map(|(id, t, _)| (id, t))
                    .collect(),
            };
            (criteria, Some(detail), None, sn)
        }
        Scheme::Points { points, sites } => {
            let entries: Vec<(String, Tri, f64)> = points
                .entries()
                .iter()
                .map(|e| (e.id().to_owned(), statuses(sites, e.id()), e.points()))
                .collect();
            let total = (!input.sites.is_empty()
                && entries.iter().all(|(_, t, _)| *t != Tri::Unknown))
            .then(|| {
                nok::sum_points(
                    entries
                        .iter()
                        .filter(|(_, t, _)| *t == Tri::Met)
                        .map(|(_, _, p)| *p),
                )
            });
            if !input.sites.is_empty() && total.is_none() {
                missing.push("points: some entries are unknown at a site".to_owned());
            }
            let detail = PointsDetail {
                entries: entries.into_iter().map(|(id, t, _)| (id, t)).collect(),
                maximum: points.maximum(),
            };
            (BTreeMap::new(), None, Some(detail), total)
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
fn rank(scores: &mut [InstitutionScore]) {
    scores.sort_by(|a, b| match (a.score, b.score) {
        (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.name.cmp(&b.name)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.name.cmp(&b.name),
    });
    let mut previous: Option<f64> = None;
    let mut current_rank = 0u32;
    for (position, s) in (1u32..).zip(scores.iter_mut()) {
        let Some(score) = s.score else { break };
        if previous != Some(score) {
            current_rank = position;
            previous = Some(score);
        }
        s.rank = Some(current_rank);
    }
}

fn summarise(scheme: Scheme<'_>, scores: &[InstitutionScore]) -> Summary {
    let mut criteria = BTreeMap::new();
    if let Scheme::Nok { rating, .. } = scheme {
        for c in &rating.criteria {
            let values: Vec<f64> = scores
                .iter()
                .filter_map(|s| s.criteria.get(&c.id).copied().flatten())
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
