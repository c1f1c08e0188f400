//! Ministry review as pure rules: who may review, which decisions are legal
//! in which state, and what changed between two revisions of an audit.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AuditScope, AuditStatus, can_see};
use crate::auth::Principal;
use crate::domain::Role;

/// A reviewer's decision on a submitted audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The audit counts for the rating and the passport.
    Approve,
    /// Back to the volunteer to fix; resubmission makes a new revision.
    Return,
    /// The audit does not count (wrong site, fabricated evidence …).
    Reject,
}

impl Decision {
    /// The stable text form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Return => "return",
            Self::Reject => "reject",
        }
    }

    /// The status the decision leads to.
    #[must_use]
    pub fn outcome(self) -> AuditStatus {
        match self {
            Self::Approve => AuditStatus::Approved,
            Self::Return => AuditStatus::Returned,
            Self::Reject => AuditStatus::Rejected,
        }
    }

    /// Whether the decision must say why.
    #[must_use]
    pub fn needs_reason(self) -> bool {
        !matches!(self, Self::Approve)
    }
}

/// A decision that the audit's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an audit that is {current} cannot be reviewed; only submitted audits can")]
pub struct IllegalTransition {
    pub current: AuditStatus,
}

/// The state after `decision`: only a submitted audit can be decided on.
///
/// # Errors
/// [`IllegalTransition`] from any other state.
pub fn decide(current: AuditStatus, decision: Decision) -> Result<AuditStatus, IllegalTransition> {
    match current {
        AuditStatus::Submitted => Ok(decision.outcome()),
        _ => Err(IllegalTransition { current }),
    }
}

/// Whether `who` may claim, judge and decide on the audit: reviewers within
/// their region and sector, and admins.
#[must_use]
pub fn may_review(who: &Principal, audit: &AuditScope) -> bool {
    matches!(who.role, Role::Reviewer | Role::Admin) && can_see(who, audit)
}

/// How a reviewer treats one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// The engine's outcome stands; recorded so others see it was checked.
    Confirm,
    /// The reviewer's verdict replaces the engine's in every score.
    Override,
}

impl VerdictKind {
    /// The stable text form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Override => "override",
        }
    }
}

/// A photo as a revision records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct PhotoRef {
    pub id: Uuid,
    /// `checklist.item`.
    pub item: String,
    pub sha256: String,
}

/// One answer that differs.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Changed {
    #[schema(value_type = Object)]
    pub from: Json,
    #[schema(value_type = Object)]
    pub to: Json,
}

/// Answers that differ between two revisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct AnswersDiff {
    /// Answered only in the later revision.
    #[schema(value_type = Object)]
    pub added: BTreeMap<String, Json>,
    /// Answered only in the earlier revision.
    #[schema(value_type = Object)]
    pub removed: BTreeMap<String, Json>,
    /// Answered in both, differently.
    pub changed: BTreeMap<String, Changed>,
}

/// Photos that differ between two revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct PhotosDiff {
    pub added: Vec<PhotoRef>,
    pub removed: Vec<PhotoRef>,
}

/// Compares answers of an earlier (`from`) and a later (`to`) revision.
#[must_use]
pub fn diff_answers(from: &BTreeMap<String, Json>, to: &BTreeMap<String, Json>) -> AnswersDiff {
    let mut diff = AnswersDiff::default();
    for (key, old) in from {
        match to.get(key) {
            None => {
                diff.removed.insert(key.clone(), old.clone());
            }
            Some(new) if new != old => {
                diff.changed.insert(
                    key.clone(),
                    Changed {
                        from: old.clone(),
                        to: new.clone(),
                    },
                );
            }
            Some(_) => {}
        }
    }
    for (key, new) in to {
        if !from.contains_key(key) {
            diff.added.insert(key.clone(), new.clone());
        }
    }
    diff
}

/// Compares the photos of two revisions by photo id.
#[must_use]
pub fn diff_photos(from: &[PhotoRef], to: &[PhotoRef]) -> PhotosDiff {
    let before: BTreeSet<&PhotoRef> = from.iter().collect();
    let after: BTreeSet<&PhotoRef> = to.iter().collect();
    PhotosDiff {
        added: after.difference(&before).map(|p| (*p).clone()).collect(),
        removed: before.difference(&after).map(|p| (*p).clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_submitted_audits_are_decided() {
        assert_eq!(
            decide(AuditStatus::Submitted, Decision::Approve),
            Ok(AuditStatus::Approved)
        );
        assert_eq!(
            decide(AuditStatus::Submitted, Decision::Return),
            Ok(AuditStatus::Returned)
        );
        for current in [
            AuditStatus::Draft,
            AuditStatus::Returned,
            AuditStatus::Approved,
            AuditStatus::Rejected,
        ] {
            assert_eq!(
                decide(current, Decision::Approve),
                Err(IllegalTransition { current })
            );
        }
        assert!(Decision::Return.needs_reason());
        assert!(Decision::Reject.needs_reason());
        assert!(!Decision::Approve.needs_reason());
    }

    #[test]
    fn diffs_name_added_removed_and_changed_answers() {
        let from = BTreeMap::from([
            ("a.slope".to_owned(), json!(12)),
            ("a.present".to_owned(), json!(true)),
            ("a.note".to_owned(), json!("old")),
        ]);
        let to = BTreeMap::from([
            ("a.slope".to_owned(), json!(5)),
            ("a.present".to_owned(), json!(true)),
            ("a.width".to_owned(), json!(1.2)),
        ]);
        let diff = diff_answers(&from, &to);
        assert_eq!(
            diff.added,
            BTreeMap::from([("a.width".to_owned(), json!(1.2))])
        );
        assert_eq!(
            diff.removed,
            BTreeMap::from([("a.note".to_owned(), json!("old"))])
        );
        assert_eq!(
            diff.changed["a.slope"],
            Changed {
                from: json!(12),
                to: json!(5)
            }
        );
        assert_eq!(diff.changed.len(), 1);
    }

    #[test]
    fn photo_diffs_compare_by_identity() {
        let photo = |n: u128, item: &str| PhotoRef {
            id: Uuid::from_u128(n),
            item: item.to_owned(),
            sha256: format!("{n:064x}"),
        };
        let diff = diff_photos(
            &[photo(1, "a.x"), photo(2, "a.y")],
            &[photo(2, "a.y"), photo(3, "a.x")],
        );
        assert_eq!(diff.added, vec![photo(3, "a.x")]);
        assert_eq!(diff.removed, vec![photo(1, "a.x")]);
    }
}
