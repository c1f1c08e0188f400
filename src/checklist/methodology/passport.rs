//! Order 627 passport: a status per zone and category from rule outcomes and severities,
//! combined over the service route into the site's status.
//!
//! Per zone and category, every rule of the zone's checklists that affects the category
//! counts: a failure gives the status configured for its severity (a critical failure's
//! ВНД becomes the assisted status, ДУ by default, when the assistance condition holds);
//! the zone takes the worst. A rule that is incomplete or awaiting review leaves the
//! status unknown only when its failure could make the status worse than it already is.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Combine, PassportRules};
use crate::checklist::catalog::Catalog;
use crate::checklist::evaluate::Resolved;
use crate::checklist::types::{Category, Outcome, Severity, Status, Zone};

/// Statuses of one zone, by category; `null` when unknown.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneStatuses {
    /// The zone.
    pub zone: Zone,
    /// Status per category letter.
    pub statuses: BTreeMap<Category, Option<Status>>,
}

/// The site's overall status, e.g. `ДП-И(О,Г,У)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteStatus {
    /// The passport designation.
    pub code: String,
}

/// The passport part of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct PassportResult {
    /// Whether staff assistance is available (`null` when unknown).
    pub assistance: Option<bool>,
    /// The zones combined into the site's status.
    pub route_zones: Vec<Zone>,
    /// Each physical zone's statuses.
    pub zones: Vec<ZoneStatuses>,
    /// Per category, the combination over the route zones.
    pub categories: BTreeMap<Category, Option<Status>>,
    /// The site's status; `null` while any category is unknown.
    pub site: Option<SiteStatus>,
}

/// Running status of one zone and category: the worst status known so far, and the
/// worst that unresolved rules could still bring.
#[derive(Clone, Copy)]
struct Acc {
    worst: Status,
    possible: Status,
}

impl Acc {
    /// Known only when no unresolved rule could make it worse.
    fn finish(self) -> Option<Status> {
        (self.possible <= self.worst).then_some(self.worst)
    }
}

pub(crate) fn compute(catalog: &Catalog, p: &PassportRules, r: &Resolved<'_>) -> PassportResult {
    let assistance = p
        .assistance
        .as_ref()
        .map_or(Some(false), |a| a.eval(&r.env()));
    let zones_shown: Vec<Zone> = Zone::ALL
        .into_iter()
        .filter(|z| *z != Zone::Services || p.route_zones.contains(z))
        .collect();
    let mut acc: BTreeMap<Zone, [Acc; 5]> = zones_shown
        .iter()
        .map(|z| {
            (
                *z,
                [Acc {
                    worst: Status::Full,
                    possible: Status::Full,
                }; 5],
            )
        })
        .collect();
    for (index, (c, ri)) in catalog.rules.iter().enumerate() {
        let Some(rule) = catalog
            .checklists
            .get(*c as usize)
            .and_then(|cl| cl.rules.get(*ri as usize))
        else {
            continue;
        };
        let Some(zone_acc) = acc.get_mut(&rule.zone) else {
            continue;
        };
        let outcome = r
            .outcomes
            .get(index)
            .copied()
            .unwrap_or(Outcome::Incomplete);
        for cat in rule.affects.iter() {
            let a = &mut zone_acc[cat.index()];
            match outcome {
                Outcome::Fail => {
                    let (known, possible) = fail_status(p, rule.severity, assistance);
                    a.worst = a.worst.max(known);
                    a.possible = a.possible.max(possible);
                }
                Outcome::Incomplete | Outcome::NeedsReview => {
                    let (_, possible) = fail_status(p, rule.severity, assistance);
                    a.possible = a.possible.max(possible);
                }
                Outcome::Pass | Outcome::NotApplicable => {}
            }
        }
    }
    let zones: Vec<ZoneStatuses> = acc
        .iter()
        .map(|(zone, cats)| ZoneStatuses {
            zone: *zone,
            statuses: Category::ALL
                .into_iter()
                .map(|c| (c, cats[c.index()].finish()))
                .collect(),
        })
        .collect();
    let categories: BTreeMap<Category, Option<Status>> = Category::ALL
        .into_iter()
        .map(|c| {
            let route = p
                .route_zones
                .iter()
                .filter_map(|z| acc.get(z))
                .map(|cats| cats[c.index()].finish());
            (c, combine(p.combine, route))
        })
        .collect();
    let site = site_status(&categories);
    PassportResult {
        assistance,
        route_zones: p.route_zones.clone(),
        zones,
        categories,
        site,
    }
}

/// The status a failure gives for certain, and the worst it may give (they differ when
/// assistance is unknown: ВНД or the assisted status).
fn fail_status(
    p: &PassportRules,
    severity: Severity,
    assistance: Option<bool>,
) -> (Status, Status) {
    let status = p.fail_status(severity);
    if status != Status::Inaccessible {
        return (status, status);
    }
    match assistance {
        Some(true) => (p.assisted_status, p.assisted_status),
        Some(false) => (status, status),
        None => (p.assisted_status.min(status), p.assisted_status.max(status)),
    }
}

fn combine(rule: Combine, statuses: impl Iterator<Item = Option<Status>>) -> Option<Status> {
    match rule {
        Combine::Worst => {
            let mut worst = Status::Full;
            let mut unknown = false;
            for s in statuses {
                match s {
                    Some(s) => worst = worst.max(s),
                    None => unknown = true,
                }
            }
            (worst == Status::Inaccessible || !unknown).then_some(worst)
        }
    }
}

/// ДП-В when every category is ДП; ДП-И(…) listing the ДП categories when some are;
/// otherwise ДЧ-В / ДЧ-И(…) likewise for ДЧ; otherwise ДУ when any category is ДУ;
/// otherwise ВНД. Unknown while any category is unknown.
fn site_status(categories: &BTreeMap<Category, Option<Status>>) -> Option<SiteStatus> {
    let known: Vec<(Category, Status)> = categories
        .iter()
        .map(|(c, s)| s.map(|s| (*c, s)))
        .collect::<Option<_>>()?;
    let with = |status: Status| -> Vec<&str> {
        known
            .iter()
            .filter(|(_, s)| *s == status)
            .map(|(c, _)| c.letter())
            .collect()
    };
    let code = [(Status::Full, "ДП"), (Status::Partial, "ДЧ")]
        .iter()
        .find_map(|(status, prefix)| {
            let cats = with(*status);
            if cats.len() == known.len() {
                Some(format!("{prefix}-В"))
            } else if !cats.is_empty() {
                Some(format!("{prefix}-И({})", cats.join(",")))
            } else {
                None
            }
        });
    let code = code.unwrap_or_else(|| {
        if known.iter().any(|(_, s)| *s == Status::Conditional) {
            "ДУ".to_owned()
        } else {
            "ВНД".to_owned()
        }
    });
    Some(SiteStatus { code })
}
