//! The audit lifecycle, answer merging and who may see or change an audit.
//! Pure domain code: values in, values out; persistence is in `db::audits`,
//! HTTP in `http::audits`.

pub mod review;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::{RegionCode, Role, Sector, UnknownValue};

/// Where an audit is in its life.
///
/// ```text
/// draft ──submit──▶ submitted ──approve──▶ approved
///   ▲                  │   └────reject───▶ rejected
///   └──── returned ◀──return
///           └──submit──▶ submitted
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    Draft,
    Submitted,
    Returned,
    Approved,
    Rejected,
}

impl AuditStatus {
    /// The stable text form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Returned => "returned",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    /// The statuses in which the volunteer may change answers and photos;
    /// conditional updates put them into SQL.
    pub const EDITABLE: [Self; 2] = [Self::Draft, Self::Returned];

    /// Whether the volunteer may change answers and photos.
    #[must_use]
    pub fn is_editable(self) -> bool {
        Self::EDITABLE.contains(&self)
    }

    /// Whether reviewers see the audit (it has been submitted at least once).
    #[must_use]
    pub fn is_reviewable(self) -> bool {
        !matches!(self, Self::Draft)
    }
}

impl std::str::FromStr for AuditStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const ALL: [AuditStatus; 5] = [
            AuditStatus::Draft,
            AuditStatus::Submitted,
            AuditStatus::Returned,
            AuditStatus::Approved,
            AuditStatus::Rejected,
        ];
        ALL.into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownValue {
                value: s.to_owned(),
                expected: &["draft", "submitted", "returned", "approved", "rejected"],
            })
    }
}

impl std::fmt::Display for AuditStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of an audit that decide who may see and change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditScope {
    pub created_by: Uuid,
    pub organisation_id: Option<Uuid>,
    pub region: RegionCode,
    pub sector: Sector,
    pub status: AuditStatus,
}

/// Whether `who` may see the audit. Volunteers see their own, coordinators
/// their organisation's, reviewers and operators those of their region and
/// sector once submitted, admins all. Callers answer 404 (not 403) otherwise,
/// so ids of other people's audits do not leak.
#[must_use]
pub fn can_see(who: &Principal, audit: &AuditScope) -> bool {
    match who.role {
        Role::Admin => true,
        Role::Volunteer => audit.created_by == who.user_id,
        Role::Coordinator => {
            audit.created_by == who.user_id
                || (who.organisation_id.is_some() && audit.organisation_id == who.organisation_id)
        }
        Role::Reviewer | Role::Operator => {
            audit.status.is_reviewable() && who.covers(&audit.region, audit.sector)
        }
        Role::Council => false,
    }
}

/// Whether `who` may change answers, photos or submit: the author, their
/// coordinator or an admin, whatever the status (the status check is
/// separate, so the answer can say `audit-not-editable`).
#[must_use]
pub fn can_edit(who: &Principal, audit: &AuditScope) -> bool {
    match who.role {
        Role::Admin => true,
        Role::Volunteer | Role::Coordinator => can_see(who, audit),
        Role::Reviewer | Role::Operator | Role::Council => false,
    }
}

/// Whether `role` may start audits.
#[must_use]
pub fn may_create(role: Role) -> bool {
    matches!(role, Role::Volunteer | Role::Coordinator | Role::Admin)
}

/// Merges a patch into stored answers: a value sets the answer, `null`
/// clears it. Keys not in the patch are untouched.
#[must_use]
pub fn merge_answers(
    mut current: BTreeMap<String, Json>,
    patch: &BTreeMap<String, Json>,
) -> BTreeMap<String, Json> {
    for (key, value) in patch {
        if value.is_null() {
            current.remove(key);
        } else {
            current.insert(key.clone(), value.clone());
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(role: Role, user: u128, org: Option<u128>) -> Principal {
        Principal {
            user_id: Uuid::from_u128(user),
            role,
            organisation_id: org.map(Uuid::from_u128),
            region: Some("48".parse().expect("valid")),
            sector: None,
        }
    }

    fn audit(status: AuditStatus) -> AuditScope {
        AuditScope {
            created_by: Uuid::from_u128(1),
            organisation_id: Some(Uuid::from_u128(10)),
            region: "48".parse().expect("valid"),
            sector: Sector::Education,
            status,
        }
    }

    #[test]
    fn volunteers_see_only_their_own_audits() {
        assert!(can_see(
            &principal(Role::Volunteer, 1, Some(10)),
            &audit(AuditStatus::Draft)
        ));
        assert!(!can_see(
            &principal(Role::Volunteer, 2, Some(10)),
            &audit(AuditStatus::Draft)
        ));
        assert!(can_see(
            &principal(Role::Coordinator, 3, Some(10)),
            &audit(AuditStatus::Draft)
        ));
        assert!(!can_see(
            &principal(Role::Coordinator, 3, Some(11)),
            &audit(AuditStatus::Draft)
        ));
    }

    #[test]
    fn reviewers_see_submitted_audits_in_scope_only() {
        let reviewer = principal(Role::Reviewer, 5, None);
        assert!(!can_see(&reviewer, &audit(AuditStatus::Draft)));
        assert!(can_see(&reviewer, &audit(AuditStatus::Submitted)));
        let mut elsewhere = reviewer.clone();
        elsewhere.region = Some("29".parse().expect("valid"));
        assert!(!can_see(&elsewhere, &audit(AuditStatus::Submitted)));
        assert!(!can_edit(&reviewer, &audit(AuditStatus::Submitted)));
    }

    #[test]
    fn null_clears_and_values_set() {
        let current = BTreeMap::from([
            ("a.x".to_owned(), json!(true)),
            ("a.y".to_owned(), json!(3)),
        ]);
        let patch = BTreeMap::from([
            ("a.x".to_owned(), Json::Null),
            ("a.z".to_owned(), json!("text")),
        ]);
        let merged = merge_answers(current, &patch);
        assert_eq!(
            merged,
            BTreeMap::from([
                ("a.y".to_owned(), json!(3)),
                ("a.z".to_owned(), json!("text"))
            ])
        );
    }

    #[test]
    fn only_drafts_and_returned_audits_are_editable() {
        assert!(AuditStatus::Draft.is_editable());
        assert!(AuditStatus::Returned.is_editable());
        assert!(!AuditStatus::Submitted.is_editable());
        assert!(!AuditStatus::Approved.is_editable());
        assert_eq!("returned".parse::<AuditStatus>(), Ok(AuditStatus::Returned));
    }
}
