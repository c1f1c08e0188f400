//! Visibility of audits and their changes as SQL conditions: the database
//! counterpart of `audit::can_see`, so lists and the sync feed filter in the
//! query instead of loading rows the caller may not see.

use sea_orm::Condition;
use sea_orm::sea_query::{Alias, Expr, ExprTrait};

use crate::audit::AuditStatus;
use crate::auth::Principal;
use crate::domain::Role;

/// Column names of one table's scope attributes.
pub(crate) struct ScopeColumns {
    pub owner: &'static str,
    pub organisation: &'static str,
    pub region: &'static str,
    pub sector: &'static str,
    pub status: &'static str,
}

fn col(name: &'static str) -> Expr {
    Expr::col(Alias::new(name))
}

/// Rows `who` may see, mirroring `audit::can_see`.
pub(crate) fn visible_to(who: &Principal, cols: &ScopeColumns) -> Condition {
    match who.role {
        Role::Admin => Condition::all(),
        Role::Volunteer => Condition::all().add(col(cols.owner).eq(who.user_id)),
        Role::Coordinator => {
            let mut any = Condition::any().add(col(cols.owner).eq(who.user_id));
            if let Some(org) = who.organisation_id {
                any = any.add(col(cols.organisation).eq(org));
            }
            any
        }
        Role::Reviewer | Role::Operator => {
            let mut all = Condition::all()
                .add(col(cols.status).is_not_null())
                .add(col(cols.status).ne(AuditStatus::Draft.as_str()));
            if let Some(region) = &who.region {
                all = all.add(col(cols.region).eq(region.as_str()));
            }
            if let Some(sector) = who.sector {
                all = all.add(col(cols.sector).eq(sector.as_str()));
            }
            all
        }
        // Matches nothing: councils see ratings, not audits.
        Role::Council => Condition::all().add(Expr::val(1).eq(0)),
    }
}
