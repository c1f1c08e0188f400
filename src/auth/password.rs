//! Password hashing with argon2id (the crate's defaults follow the OWASP
//! recommendation: 19 MiB, 2 passes). Hashing is CPU-heavy: callers on the
//! async runtime run these functions through `spawn_blocking`.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted for new accounts.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted for new accounts: enough for any password
/// manager, and a bound on what is hashed.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Password problems reported to whoever sets one.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("password must have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Whether a new password is acceptable.
///
/// # Errors
/// [`PasswordError::TooShort`] below [`MIN_PASSWORD_CHARS`],
/// [`PasswordError::TooLong`] above [`MAX_PASSWORD_CHARS`].
pub fn check(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(PasswordError::TooShort)
    } else if chars > MAX_PASSWORD_CHARS {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

/// Hashes a new password into a PHC string.
///
/// # Errors
/// As [`check`]; hashing failure (only if the system random source fails).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Checks a password against a stored PHC string. A malformed stored hash
/// verifies nothing.
#[must_use]
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the same work as a real check, for logins with an unknown email,
/// so response time does not reveal whether an account exists.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("dummy-password-for-timing").unwrap_or_default());
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse battery").expect("hashes");
        let b = hash("correct horse battery").expect("hashes");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &a));
        assert!(!verify("wrong horse battery", &a));
        assert!(!verify("anything", "not a phc string"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(hash("short"), Err(PasswordError::TooShort)));
    }
}
