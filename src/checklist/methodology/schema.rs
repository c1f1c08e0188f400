//! Methodology files as written in YAML (`checklists/methodology/*.yaml`). A file holds
//! exactly one of the sections `nok`, `points` or `passport`; see checklists/README.md.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Rating, SiteRule, ZeroRespondents};
use crate::checklist::text::Localized;
use crate::checklist::types::{Severity, Status, Zone};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMethodology {
    pub id: Spanned<String>,
    pub version: Spanned<String>,
    pub title: Localized,
    #[serde(default)]
    pub description: Option<Localized>,
    /// The scoring methodology used when none is requested (exactly one per catalog).
    #[serde(default)]
    pub default: bool,
    /// The passport methodology computed alongside this scoring methodology.
    #[serde(default)]
    pub passport: Option<Spanned<String>>,
    #[serde(default)]
    pub nok: Option<RawNok>,
    #[serde(default)]
    pub points: Option<RawPoints>,
    #[serde(rename = "passport_rules", default)]
    pub passport_rules: Option<RawPassport>,
    #[serde(default)]
    pub rating: Option<Spanned<Rating>>,
    /// How an institution's sites combine (default `all_sites`).
    #[serde(default)]
    pub sites: Option<SiteRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNok {
    pub points_per_condition: f64,
    pub cap_3_1: f64,
    pub cap_3_2: f64,
    pub weights: Spanned<RawK3Weights>,
    pub zero_respondents: ZeroRespondents,
    pub conditions_3_1: Vec<RawCondition>,
    pub conditions_3_2: Vec<RawCondition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawK3Weights {
    pub p3_1: f64,
    pub p3_2: f64,
    pub p3_3: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCondition {
    pub id: Spanned<String>,
    pub title: Localized,
    /// Why the mapping is what it is, for experts and the public council.
    #[serde(default)]
    pub note: Option<Localized>,
    pub met: Spanned<String>,
    #[serde(default)]
    pub points: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoints {
    pub maximum: Spanned<f64>,
    pub entries: Vec<RawCondition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPassport {
    /// Status a failed rule gives its zone for the categories it affects, by severity.
    pub fail_status: BTreeMap<Severity, Status>,
    /// When this condition is true, a failure that would make a zone ВНД gives
    /// `assisted_status` instead: staff help makes the zone conditionally accessible.
    #[serde(default)]
    pub assistance: Option<Spanned<String>>,
    #[serde(default)]
    pub assisted_status: Option<Status>,
    /// Zones whose statuses combine into the site's status (the service route).
    pub route_zones: Spanned<Vec<Zone>>,
    pub combine: Combine,
}

/// How zone statuses of one category combine into the site's status for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The worst status over the route zones (ДП > ДЧ > ДУ > ВНД).
    Worst,
}
