//! Loading methodology files: check the section present, weights, caps and references,
//! and compile every mapping expression against the loaded checklists.

use std::collections::{HashMap, HashSet};

use super::schema::{RawCondition, RawMethodology, RawNok, RawPassport, RawPoints};
use super::{Condition, Methodology, MethodologyKind, Nok, PassportRules, Points, Rating};
use crate::checklist::error::LoadErrors;
use crate::checklist::expr::{ItemInfo, Lookup, Scope};
use crate::checklist::loader::{ItemTable, compile};
use crate::checklist::rendered::Rendered;
use crate::checklist::source::Source;
use crate::checklist::types::{Severity, Status, is_semver};

/// Weights are decimal fractions written by people: accept rounding noise only.
const WEIGHT_TOLERANCE: f64 = 1e-9;

struct MethodologyScope<'a> {
    table: &'a ItemTable,
    rules: &'a HashMap<String, u32>,
}

impl Scope for MethodologyScope<'_> {
    fn item(&self, checklist: Option<&str>, id: &str) -> Result<ItemInfo<'_>, Lookup> {
        let checklist = checklist.ok_or_else(|| {
            format!("write `checklist.{id}`: methodologies have no current checklist")
        })?;
        self.table.lookup(checklist, id)
    }

    fn rule(&self, key: &str) -> Result<u32, Lookup> {
        if let Some(r) = self.rules.get(key) {
            return Ok(*r);
        }
        let checklist_known = key
            .split_once('.')
            .is_some_and(|(c, _)| self.table.has_checklist(c));
        if self.table.broken.contains(key) || (!checklist_known && self.table.some_file_unparsed) {
            return Err(Lookup::Cascade);
        }
        Err(Lookup::Missing(format!("unknown rule `{key}`")))
    }
}

/// Loads and cross-checks methodologies.
pub(crate) fn load_methodologies(
    sources: &[Source],
    table: &ItemTable,
    rules: &HashMap<String, u32>,
    errors: &mut LoadErrors,
) -> Vec<Methodology> {
    let scope = MethodologyScope { table, rules };
    let mut out: Vec<Methodology> = Vec::new();
    let mut passport_refs = Vec::new();
    for source in sources {
        let raw: RawMethodology = match source.parse() {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let id = raw.id.value.clone();
        let valid_id = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_id {
            errors.push(source.error(
                &raw.id.referenced,
                format!(
                    "invalid methodology id `{id}`: expected lower-case letters, digits and `-`"
                ),
            ));
        }
        if !is_semver(&raw.version.value) {
            errors.push(source.error(
                &raw.version.referenced,
                format!(
                    "invalid version `{}`: expected a semantic version such as 1.0.0",
                    raw.version.value
                ),
            ));
        }
        if let Some(first) = out.iter().find(|m| m.id == id) {
            errors.push(source.error(
                &raw.id.referenced,
                format!(
                    "duplicate methodology id `{id}`, already defined in {}",
                    first.file.display()
                ),
            ));
            continue;
        }
        let sections = [
            raw.nok.is_some(),
            raw.points.is_some(),
            raw.passport_rules.is_some(),
        ];
        if sections.iter().filter(|s| **s).count() != 1 {
            errors.push(source.error(
                &raw.id.referenced,
                "a methodology needs exactly one of the sections `nok`, `points`, `passport_rules`",
            ));
            continue;
        }
        let kind = if let Some(nok) = &raw.nok {
            nok_section(source, nok, &scope, errors).map(MethodologyKind::Nok)
        } else if let Some(points) = &raw.points {
            points_section(source, points, &scope, errors).map(MethodologyKind::Points)
        } else if let Some(p) = &raw.passport_rules {
            passport_section(source, p, &scope, errors).map(MethodologyKind::Passport)
        } else {
            None
        };
        if let Some(rating) = &raw.rating {
            check_rating(source, rating, errors);
            if raw.nok.is_none() {
                errors.push(source.error(
                    &rating.referenced,
                    "`rating` belongs to an order 344н (`nok`) methodology",
                ));
            }
        }
        let is_passport = raw.passport_rules.is_some();
        if is_passport && (raw.default || raw.passport.is_some()) {
            errors.push(source.error(
                &raw.id.referenced,
                "a passport methodology cannot be `default` or name a `passport`",
            ));
        }
        if let Some(p) = &raw.passport {
            passport_refs.push((source, p.clone()));
        }
        let Some(kind) = kind else { continue };
        out.push(Methodology {
            id,
            version: raw.version.value.clone(),
            title: raw.title.clone(),
            description: raw.description.clone(),
            default: raw.default,
            passport: raw.passport.as_ref().map(|p| p.value.clone()),
            kind,
            rating: raw.rating.map(|r| r.value),
            sites: raw.sites.unwrap_or_default(),
            sha256: source.sha256.clone(),
            file: source.path.clone(),
        });
    }
    for (source, p) in passport_refs {
        let target = out.iter().find(|m| m.id == p.value);
        if !matches!(target.map(|m| &m.kind), Some(MethodologyKind::Passport(_))) {
            errors.push(source.error(
                &p.referenced,
                format!(
                    "`passport: {}` does not name a loaded passport methodology",
                    p.value
                ),
            ));
        }
    }
    out
}

fn conditions(
    source: &Source,
    raw: &[RawCondition],
    default_points: Option<f64>,
    scope: &MethodologyScope<'_>,
    errors: &mut LoadErrors,
) -> Option<Vec<Condition>> {
    let start = errors.errors.len();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut failed = false;
    for c in raw {
        if !seen.insert(c.id.value.as_str()) {
            errors.push(source.error(
                &c.id.referenced,
                format!("duplicate condition id `{}`", c.id.value),
            ));
            continue;
        }
        let points = match (c.points, default_points) {
            (Some(p), _) | (None, Some(p)) if p.is_finite() && p >= 0.0 => p,
            _ => {
                errors.push(source.error(
                    &c.id.referenced,
                    format!("condition `{}` needs non-negative `points`", c.id.value),
                ));
                continue;
            }
        };
        match compile(source, &c.met, "met", scope, errors) {
            Some(met) => out.push(Condition {
                id: c.id.value.clone(),
                title: Rendered::new(c.title.clone()),
                note: c.note.clone(),
                met,
                points,
            }),
            None => failed = true,
        }
    }
    (errors.errors.len() == start && !failed).then_some(out)
}

fn nok_section(
    source: &Source,
    raw: &RawNok,
    scope: &MethodologyScope<'_>,
    errors: &mut LoadErrors,
) -> Option<Nok> {
    let w = &raw.weights.value;
    let sum = w.p3_1 + w.p3_2 + w.p3_3;
    let weights_ok = [w.p3_1, w.p3_2, w.p3_3]
        .iter()
        .all(|x| x.is_finite() && *x >= 0.0)
        && (sum - 1.0).abs() < WEIGHT_TOLERANCE;
    if !weights_ok {
        errors.push(source.error(
            &raw.weights.referenced,
            format!("K3 weights must be non-negative and sum to 1, found sum {sum}"),
        ));
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !(positive(raw.points_per_condition) && positive(raw.cap_3_1) && positive(raw.cap_3_2)) {
        errors.push(source.error(
            &raw.weights.referenced,
            "points_per_condition, cap_3_1 and cap_3_2 must be positive",
        ));
    }
    let c31 = conditions(
        source,
        &raw.conditions_3_1,
        Some(raw.points_per_condition),
        scope,
        errors,
    );
    let c32 = conditions(
        source,
        &raw.conditions_3_2,
        Some(raw.points_per_condition),
        scope,
        errors,
    );
    Some(Nok {
        points_per_condition: raw.points_per_condition,
        cap_3_1: raw.cap_3_1,
        cap_3_2: raw.cap_3_2,
        weights: [w.p3_1, w.p3_2, w.p3_3],
        zero_respondents: raw.zero_respondents,
        conditions_3_1: c31?,
        conditions_3_2: c32?,
    })
    .filter(|_| weights_ok)
}

fn points_section(
    source: &Source,
    raw: &RawPoints,
    scope: &MethodologyScope<'_>,
    errors: &mut LoadErrors,
) -> Option<Points> {
    let entries = conditions(source, &raw.entries, None, scope, errors)?;
    let total: f64 = entries.iter().map(|e| e.points).sum();
    let maximum = raw.maximum.value;
    if !maximum.is_finite() || maximum <= 0.0 || (total - maximum).abs() > WEIGHT_TOLERANCE {
        errors.push(source.error(
            &raw.maximum.referenced,
            format!("`maximum` must equal the sum of the entries' points ({total})"),
        ));
        return None;
    }
    Some(Points { maximum, entries })
}

fn passport_section(
    source: &Source,
    raw: &RawPassport,
    scope: &MethodologyScope<'_>,
    errors: &mut LoadErrors,
) -> Option<PassportRules> {
    let severities = [Severity::Critical, Severity::Major, Severity::Minor];
    let mut fail_status = [Status::Inaccessible, Status::Partial, Status::Full];
    for (i, s) in severities.iter().enumerate() {
        match raw.fail_status.get(s) {
            Some(st) => fail_status[i] = *st,
            None => {
                errors.push(source.error(
                    &raw.route_zones.referenced,
                    format!("`fail_status` needs an entry for `{}`", s.as_str()),
                ));
                return None;
            }
        }
    }
    if raw.route_zones.value.is_empty() {
        errors.push(source.error(
            &raw.route_zones.referenced,
            "`route_zones` needs at least one zone",
        ));
        return None;
    }
    let assistance = match &raw.assistance {
        Some(a) => Some(compile(source, a, "assistance", scope, errors)?),
        None => None,
    };
    Some(PassportRules {
        fail_status,
        assistance,
        assisted_status: raw.assisted_status.unwrap_or(Status::Conditional),
        route_zones: raw.route_zones.value.clone(),
        combine: raw.combine,
    })
}

fn check_rating(source: &Source, rating: &serde_saphyr::Spanned<Rating>, errors: &mut LoadErrors) {
    // Sn is the mean of exactly K1..K5: a missing or extra criterion would shift every
    // organisation's score.
    let ids: Vec<&str> = rating
        .value
        .criteria
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    if ids != ["K1", "K2", "K3", "K4", "K5"] {
        errors.push(source.error(
            &rating.referenced,
            format!(
                "`rating.criteria` must list K1, K2, K3, K4, K5 in order, found {}",
                ids.join(", ")
            ),
        ));
    }
    for c in &rating.value.criteria {
        let negative = c
            .indicators
            .iter()
            .map(|i| i.weight)
            .chain(c.variants.iter().flat_map(|v| v.weights.values().copied()))
            .any(|w| !w.is_finite() || w < 0.0);
        if negative {
            errors.push(source.error(
                &rating.referenced,
                format!("weights of criterion {} must be non-negative numbers", c.id),
            ));
        }
        let sum: f64 = c.indicators.iter().map(|i| i.weight).sum();
        if (sum - 1.0).abs() > WEIGHT_TOLERANCE {
            errors.push(source.error(
                &rating.referenced,
                format!("weights of criterion {} sum to {sum}, expected 1", c.id),
            ));
        }
        for v in &c.variants {
            let sum: f64 = v.weights.values().sum();
            let known = v
                .weights
                .keys()
                .all(|k| c.indicators.iter().any(|i| &i.id == k));
            if (sum - 1.0).abs() > WEIGHT_TOLERANCE || !known {
                errors.push(source.error(
                    &rating.referenced,
                    format!(
                        "variant {} of {} must weight known indicators summing to 1",
                        v.id, c.id
                    ),
                ));
            }
        }
    }
}
