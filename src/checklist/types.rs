//! The small closed vocabularies of the domain: zones, categories of disabled people,
//! severities, recommended work, photo policies, rule outcomes and passport statuses.
//!
//! Each is an enum so a typo in YAML is a load error with its position, never a silent
//! default. Russian designations (К, ДП, ...) are the serialised form because they are
//! what the order 627 passport prints; Latin aliases exist for keyboards without Cyrillic.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An order 627 zone, plus `services` for organisational conditions that belong to no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    /// 1. Territory next to the building: paths, parking, outdoor stairs and ramps.
    Territory,
    /// 2. Entrance(s): stairs, ramp, landing, door, vestibule.
    Entrance,
    /// 3. Routes inside: corridors, stairs, lifts, doors, evacuation routes.
    Routes,
    /// 4. The zone where the service is delivered.
    Service,
    /// 5. Sanitary rooms.
    Sanitary,
    /// 6. Information systems (visual, acoustic, tactile) across the building.
    Information,
    /// 7. The route from the public transport stop.
    Approach,
    /// Organisational conditions (interpreter, trained staff, remote service, website):
    /// not a physical zone, so it never enters the passport's zone table.
    Services,
}

impl Zone {
    /// All zones in passport order (order 627 numbering, then `services`).
    pub const ALL: [Zone; 8] = [
        Zone::Territory,
        Zone::Entrance,
        Zone::Routes,
        Zone::Service,
        Zone::Sanitary,
        Zone::Information,
        Zone::Approach,
        Zone::Services,
    ];

    /// The snake_case name used in YAML and JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Zone::Territory => "territory",
            Zone::Entrance => "entrance",
            Zone::Routes => "routes",
            Zone::Service => "service",
            Zone::Sanitary => "sanitary",
            Zone::Information => "information",
            Zone::Approach => "approach",
            Zone::Services => "services",
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Category of disabled people (order 627).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Category {
    /// К: wheelchair users.
    #[serde(rename = "К", alias = "K")]
    K,
    /// О: other musculoskeletal impairments.
    #[serde(rename = "О", alias = "O")]
    O,
    /// С: vision impairments.
    #[serde(rename = "С", alias = "S")]
    S,
    /// Г: hearing impairments.
    #[serde(rename = "Г", alias = "G")]
    G,
    /// У: intellectual impairments.
    #[serde(rename = "У", alias = "U")]
    U,
}

impl Category {
    /// All categories in passport order.
    pub const ALL: [Category; 5] = [
        Category::K,
        Category::O,
        Category::S,
        Category::G,
        Category::U,
    ];

    /// The Cyrillic letter printed in the passport.
    #[must_use]
    pub const fn letter(self) -> &'static str {
        match self {
            Category::K => "К",
            Category::O => "О",
            Category::S => "С",
            Category::G => "Г",
            Category::U => "У",
        }
    }

    /// Position in [`Category::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

/// How serious a failed rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Blocks access for the affected categories.
    Critical,
    /// Makes access hard but possible.
    Major,
    /// A deviation from the norm that hardly limits access.
    Minor,
}

impl Severity {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
        }
    }
}

/// Work recommended when a rule fails (order 627 passport, section on management decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Nothing to do.
    None,
    /// Repair (current or capital) or reconstruction.
    Repair,
    /// An individual assistive solution (technical means of rehabilitation, staff help).
    IndividualSolution,
    /// An alternative form of service (at home, remotely).
    AlternativeService,
}

/// When an item needs a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoPolicy {
    /// No photo slot.
    #[default]
    Never,
    /// A photo may be attached.
    Optional,
    /// A photo is required whenever the item applies.
    Required,
    /// A photo is required when the boolean answer is `true` (e.g. "ramp present").
    RequiredIfTrue,
    /// A photo is required when any rule checking this item fails: the evidence of a violation.
    RequiredIfFail,
}

/// The outcome of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check holds.
    Pass,
    /// The check does not hold.
    Fail,
    /// The rule's `when` condition is false (e.g. no ramp, so no ramp slope rule).
    NotApplicable,
    /// An answer the rule needs is missing: never scored as a failure.
    Incomplete,
    /// A reviewer must judge (e.g. from the photo).
    NeedsReview,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::NotApplicable,
        Outcome::Incomplete,
        Outcome::NeedsReview,
    ];

    /// Position in [`Outcome::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NotApplicable => "not_applicable",
            Outcome::Incomplete => "incomplete",
            Outcome::NeedsReview => "needs_review",
        }
    }
}

/// A reviewer's verdict replacing the engine's outcome of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The reviewer judges the rule satisfied.
    Pass,
    /// The reviewer judges the rule violated.
    Fail,
    /// The reviewer judges the rule not applicable to this site.
    NotApplicable,
}

impl From<Verdict> for Outcome {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail => Outcome::Fail,
            Verdict::NotApplicable => Outcome::NotApplicable,
        }
    }
}

/// Accessibility status of a zone for a category (order 627), best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// ДП: fully accessible.
    #[serde(rename = "ДП", alias = "DP")]
    Full,
    /// ДЧ: partially accessible.
    #[serde(rename = "ДЧ", alias = "DCh")]
    Partial,
    /// ДУ: conditionally accessible (staff help, at home, remotely).
    #[serde(rename = "ДУ", alias = "DU")]
    Conditional,
    /// ВНД: temporarily inaccessible.
    #[serde(rename = "ВНД", alias = "VND")]
    Inaccessible,
}

impl Status {
    /// The designation printed in the passport.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Status::Full => "ДП",
            Status::Partial => "ДЧ",
            Status::Conditional => "ДУ",
            Status::Inaccessible => "ВНД",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Whether `id` is a valid identifier for a checklist, item or rule: lower-case ASCII
/// letters, digits and underscores, starting with a letter, so it can appear in
/// expressions as `checklist.item` without quoting.
#[must_use]
pub fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && id.len() <= 64
}

/// Whether `v` is a semantic version `MAJOR.MINOR.PATCH` with an optional pre-release
/// (`-rc.1`) and build (`+sha`) suffix, per semver.org 2.0.
#[must_use]
pub fn is_semver(v: &str) -> bool {
    let (core, build) = match v.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(ident)
        && build.is_none_or(ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_and_category_sits_at_its_index() {
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome.index(), i, "{outcome:?}");
        }
        for (i, category) in Category::ALL.into_iter().enumerate() {
            assert_eq!(category.index(), i, "{category:?}");
        }
    }

    #[test]
    fn semver_and_identifiers() {
        assert!(is_semver("1.0.0"));
        assert!(is_semver("2.10.3-rc.1+abc"));
        assert!(!is_semver("1.0"));
        assert!(!is_semver("01.0.0"));
        assert!(!is_semver("1.0.0-"));
        assert!(is_identifier("ramp_slope2"));
        assert!(!is_identifier("Ramp"));
        assert!(!is_identifier("ramp-slope"));
    }

    #[test]
    fn statuses_rank_best_first() {
        assert!(Status::Full < Status::Partial);
        assert!(Status::Conditional < Status::Inaccessible);
    }
}
