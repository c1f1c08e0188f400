//! Creating accounts: shared by `POST /users`, `dostup user create` and the
//! demo seed, so all three validate and hash the same way.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::normalise_email;
use super::password::{self, PasswordError};
use crate::db::{self, DbError, entity::user, users::NewUser};
use crate::domain::{RegionCode, Role, Sector};

/// A new account with its plain-text password.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub role: Role,
    pub organisation_id: Option<Uuid>,
    pub region: Option<RegionCode>,
    pub sector: Option<Sector>,
}

/// Longest display name of an account.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// A field of a new account that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacceptable {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// Why an account was not created.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Every field that is not acceptable, in the order of the form.
    #[error("{}", .0.iter().map(|u| u.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Unacceptable>),
    #[error("an account with this email exists")]
    EmailTaken,
    #[error("the organisation or region does not exist")]
    UnknownReference,
    #[error(transparent)]
    Db(DbError),
    #[error("password hashing did not finish: {0}")]
    Internal(String),
}

/// Every field of `account` that is not acceptable: a plausible email, a
/// password of 10 to 1,024 characters, a display name of at most 200.
fn unacceptable(account: &NewAccount) -> Vec<Unacceptable> {
    let mut found = Vec::new();
    if !plausible_email(&normalise_email(&account.email)) {
        found.push(Unacceptable {
            field: "email",
            code: "invalid-email",
            message: format!("`{}` is not an email address", account.email),
        });
    }
    if let Err(err) = password::check(&account.password) {
        found.push(Unacceptable {
            field: "password",
            code: match err {
                PasswordError::TooLong => "too-long",
                _ => "weak-password",
            },
            message: err.to_string(),
        });
    }
    if account.display_name.trim().chars().count() > MAX_DISPLAY_NAME_CHARS {
        found.push(Unacceptable {
            field: "display_name",
            code: "too-long",
            message: format!("a display name may have at most {MAX_DISPLAY_NAME_CHARS} characters"),
        });
    }
    found
}

/// Validates, hashes and stores a new account.
///
/// # Errors
/// [`AccountError`] naming what is wrong: every unacceptable field at once.
pub async fn create_account(
    db: &DatabaseConnection,
    account: NewAccount,
) -> Result<user::Model, AccountError> {
    let invalid = unacceptable(&account);
    if !invalid.is_empty() {
        return Err(AccountError::Invalid(invalid));
    }
    let email = normalise_email(&account.email);
    let plain = account.password;
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&plain))
        .await
        .map_err(|e| AccountError::Internal(e.to_string()))?
        .map_err(|e| AccountError::Internal(e.to_string()))?;
    let display_name = match account.display_name.trim() {
        "" => email.clone(),
        name => name.to_owned(),
    };
    db::users::create_user(
        db,
        NewUser {
            email,
            display_name,
            password_hash,
            role: account.role,
            organisation_id: account.organisation_id,
            region: account.region,
            sector: account.sector,
        },
    )
    .await
    .map_err(|e| match e {
        DbError::Conflict(_) => AccountError::EmailTaken,
        DbError::MissingReference(_) => AccountError::UnknownReference,
        other => AccountError::Db(other),
    })
}

/// One `@`, something on both sides, a dot in the domain, no spaces: enough
/// to catch typos; deliverability is proven by use, not by a regex.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && email.len() <= 254
}

#[cfg(test)]
mod tests {
    use super::plausible_email;

    #[test]
    fn email_plausibility() {
        assert!(plausible_email("volunteer@demo.local"));
        assert!(!plausible_email("volunteer"));
        assert!(!plausible_email("a@b"));
        assert!(!plausible_email("a b@c.d"));
        assert!(!plausible_email("a@b@c.d"));
    }
}
