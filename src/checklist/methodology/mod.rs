//! Methodologies as data: the order 344н criterion 3 mapping, the order 627 passport
//! mapping and illustrative points schemes. This module owns their compiled form and
//! the arithmetic that turns rule outcomes into scores and statuses.

mod load;
pub mod nok;
pub(crate) mod passport;
pub(crate) mod points;
mod schema;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use nok::{ConditionResult, NokScore, Tri};
pub use passport::{PassportResult, SiteStatus, ZoneStatuses};
pub use points::PointsScore;
pub use schema::Combine;

pub(crate) use load::load_methodologies;

use super::expr::Expr;
use super::rendered::Rendered;
use super::text::Localized;
use super::types::{Severity, Status, Zone};

/// A loaded methodology.
#[derive(Debug, Clone)]
pub struct Methodology {
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) title: Localized,
    pub(crate) description: Option<Localized>,
    pub(crate) default: bool,
    pub(crate) passport: Option<String>,
    pub(crate) kind: MethodologyKind,
    pub(crate) rating: Option<Rating>,
    pub(crate) sites: SiteRule,
    pub(crate) sha256: String,
    pub(crate) file: PathBuf,
}

impl Methodology {
    /// Its id (`nok-344n`).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its semantic version.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Its title.
    #[must_use]
    pub fn title(&self) -> &Localized {
        &self.title
    }
    /// Its description.
    #[must_use]
    pub fn description(&self) -> Option<&Localized> {
        self.description.as_ref()
    }
    /// Lower-case hex SHA-256 of the source file.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The file it was loaded from.
    #[must_use]
    pub fn file(&self) -> &Path {
        &self.file
    }
    /// What it computes.
    #[must_use]
    pub fn kind(&self) -> &MethodologyKind {
        &self.kind
    }
    /// The id of the passport methodology computed alongside, if any.
    #[must_use]
    pub fn passport(&self) -> Option<&str> {
        self.passport.as_deref()
    }
    /// The 344н criteria weights, for the rating.
    #[must_use]
    pub fn rating(&self) -> Option<&Rating> {
        self.rating.as_ref()
    }
    /// How an institution's sites combine into its score.
    #[must_use]
    pub fn sites(&self) -> SiteRule {
        self.sites
    }
    /// Whether this is the catalog's default scoring methodology.
    #[must_use]
    pub fn is_default(&self) -> bool {
        self.default
    }
    /// `nok`, `points` or `passport`.
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            MethodologyKind::Nok(_) => "nok",
            MethodologyKind::Points(_) => "points",
            MethodologyKind::Passport(_) => "passport",
        }
    }
}

/// How the results of an institution's sites combine, condition by condition (or
/// entry by entry of a points scheme), into the institution's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteRule {
    /// A condition counts only when it holds at every audited site: each site is one
    /// where the service is delivered, so each must be accessible.
    #[default]
    AllSites,
    /// A condition counts when it holds at one audited site or more.
    AnySite,
}

impl SiteRule {
    /// The institution's status of a condition from its sites' statuses.
    #[must_use]
    pub fn combine(self, statuses: impl IntoIterator<Item = Tri>) -> Tri {
        let (mut met, mut not_met, mut unknown) = (0usize, 0usize, 0usize);
        for s in statuses {
            match s {
                Tri::Met => met += 1,
                Tri::NotMet => not_met += 1,
                Tri::Unknown => unknown += 1,
            }
        }
        match self {
            _ if met + not_met + unknown == 0 => Tri::Unknown,
            Self::AllSites if not_met > 0 => Tri::NotMet,
            Self::AllSites if unknown > 0 => Tri::Unknown,
            Self::AllSites => Tri::Met,
            Self::AnySite if met > 0 => Tri::Met,
            Self::AnySite if unknown > 0 => Tri::Unknown,
            Self::AnySite => Tri::NotMet,
        }
    }
}

/// What a methodology computes.
#[derive(Debug, Clone)]
pub enum MethodologyKind {
    /// Order 344н criterion 3 (P3.1, P3.2, P3.3, K3).
    Nok(Nok),
    /// A points scheme with its own maximum.
    Points(Points),
    /// Order 627 passport statuses.
    Passport(PassportRules),
}

/// Order 344н criterion 3 settings.
#[derive(Debug, Clone)]
pub struct Nok {
    pub(crate) points_per_condition: f64,
    pub(crate) cap_3_1: f64,
    pub(crate) cap_3_2: f64,
    pub(crate) weights: [f64; 3],
    pub(crate) zero_respondents: ZeroRespondents,
    pub(crate) conditions_3_1: Vec<Condition>,
    pub(crate) conditions_3_2: Vec<Condition>,
}

/// What indicator 3.3 is when the survey has no disabled respondents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroRespondents {
    /// 3.3 and K3 are not computable; the result says why.
    NotComputable,
    /// 3.3 is 0.
    Zero,
    /// 3.3 is 100 (nobody dissatisfied).
    Full,
}

/// A condition of 3.1 / 3.2, or an entry of a points scheme: a mapping from rule
/// outcomes and answers to met / not met / unknown.
#[derive(Debug, Clone)]
pub struct Condition {
    pub(crate) id: String,
    pub(crate) title: Rendered<Localized>,
    pub(crate) note: Option<Localized>,
    pub(crate) met: Expr,
    pub(crate) points: f64,
}

/// A points scheme.
#[derive(Debug, Clone)]
pub struct Points {
    pub(crate) maximum: f64,
    pub(crate) entries: Vec<Condition>,
}

/// Order 627 passport mapping.
#[derive(Debug, Clone)]
pub struct PassportRules {
    pub(crate) fail_status: [Status; 3],
    pub(crate) assistance: Option<Expr>,
    pub(crate) assisted_status: Status,
    pub(crate) route_zones: Vec<Zone>,
    pub(crate) combine: Combine,
}

impl PassportRules {
    pub(crate) fn fail_status(&self, s: Severity) -> Status {
        self.fail_status[s as usize]
    }
}

/// Order 344н weights of all five criteria, kept as data for the rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    /// K1..K5.
    pub criteria: Vec<Criterion>,
    /// How the organisation score combines the criteria (`mean`: Sn = (K1+…+K5)/5).
    pub overall: Overall,
}

/// A criterion with its indicators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// `K1`..`K5`.
    pub id: String,
    /// Its name.
    pub title: Localized,
    /// Indicators and weights (summing to 1).
    pub indicators: Vec<Indicator>,
    /// Alternative weightings, e.g. K2 without indicator 2.2.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

/// An indicator and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// `1.1`, `3.2`, ...
    pub id: String,
    /// Its weight in the criterion.
    pub weight: f64,
    /// Its name.
    pub title: Localized,
}

/// An alternative weighting of a criterion's indicators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Variant id, e.g. `without_2_2`.
    pub id: String,
    /// When it applies.
    pub title: Localized,
    /// Indicator id → weight (summing to 1); indicators not listed are not used.
    pub weights: std::collections::BTreeMap<String, f64>,
}

/// How criteria combine into the organisation score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// The arithmetic mean.
    Mean,
}

impl Nok {
    /// Points per condition present (20 in order 344н).
    #[must_use]
    pub fn points_per_condition(&self) -> f64 {
        self.points_per_condition
    }
    /// K3 weights of P3.1, P3.2, P3.3.
    #[must_use]
    pub fn weights(&self) -> [f64; 3] {
        self.weights
    }
    /// Cap of indicator 3.1.
    #[must_use]
    pub fn cap_3_1(&self) -> f64 {
        self.cap_3_1
    }
    /// Cap of indicator 3.2.
    #[must_use]
    pub fn cap_3_2(&self) -> f64 {
        self.cap_3_2
    }
    /// Rule for zero disabled respondents.
    #[must_use]
    pub fn zero_respondents(&self) -> ZeroRespondents {
        self.zero_respondents
    }
    /// Conditions 3.1.x.
    #[must_use]
    pub fn conditions_3_1(&self) -> &[Condition] {
        &self.conditions_3_1
    }
    /// Conditions 3.2.x.
    #[must_use]
    pub fn conditions_3_2(&self) -> &[Condition] {
        &self.conditions_3_2
    }
}

impl Points {
    /// The scheme's maximum.
    #[must_use]
    pub fn maximum(&self) -> f64 {
        self.maximum
    }
    /// Its entries.
    #[must_use]
    pub fn entries(&self) -> &[Condition] {
        &self.entries
    }
}

impl Condition {
    /// Points when met.
    #[must_use]
    pub fn points(&self) -> f64 {
        self.points
    }
    /// Its id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its title.
    #[must_use]
    pub fn title(&self) -> &Localized {
        &self.title
    }
    /// Why the mapping is what it is.
    #[must_use]
    pub fn note(&self) -> Option<&Localized> {
        self.note.as_ref()
    }
    /// The mapping expression.
    #[must_use]
    pub fn mapping(&self) -> &str {
        self.met.source()
    }
}
