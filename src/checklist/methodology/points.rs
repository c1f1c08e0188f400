//! Points schemes: each entry's mapping met or not, summed against the scheme's maximum.

use serde::Serialize;

use super::Points;
use super::nok::{ConditionResult, Tri, conditions, sum_points};
use crate::checklist::catalog::Catalog;
use crate::checklist::evaluate::Resolved;

/// A points scheme's result.
#[derive(Debug, Clone, Serialize)]
pub struct PointsScore<'a> {
    /// Each entry and what decided it.
    pub entries: Vec<ConditionResult<'a>>,
    /// Points of entries known to be met.
    pub known_points: f64,
    /// The total, `null` while any entry is unknown.
    pub total: Option<f64>,
    /// The scheme's maximum.
    pub maximum: f64,
}

pub(crate) fn compute<'a>(
    catalog: &'a Catalog,
    points: &'a Points,
    r: &Resolved<'a>,
) -> PointsScore<'a> {
    let entries = conditions(catalog, &points.entries, r);
    let known_points = sum_points(entries.iter().map(|e| e.points));
    let total = entries
        .iter()
        .all(|e| e.status != Tri::Unknown)
        .then_some(known_points);
    PointsScore {
        entries,
        known_points,
        total,
        maximum: points.maximum,
    }
}
