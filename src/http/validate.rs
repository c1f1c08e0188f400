//! Collects every invalid field of a request before answering, so a client
//! fixes all of them in one round trip instead of one per request.

use super::error::{ApiError, FieldError};

/// Accumulated field errors of one request.
#[derive(Debug, Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// A required, trimmed, bounded text; returns the trimmed value.
    pub fn text(&mut self, field: &str, value: &str, max_chars: usize) -> String {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.fail(field, "required", "must not be empty");
        } else if trimmed.chars().count() > max_chars {
            self.fail(
                field,
                "too-long",
                format!("must have at most {max_chars} characters"),
            );
        }
        trimmed.to_owned()
    }

    /// Records `control-character` on `field` if `text` holds a control
    /// character text may not hold (see [`crate::domain::refused_control`]).
    pub fn control(&mut self, field: &str, text: &str) {
        self.0.extend(super::extract::control_error(field, text));
    }

    /// Records `code` on `field` unless `ok`.
    pub fn ensure(&mut self, ok: bool, field: &str, code: &str, message: impl Into<String>) {
        if !ok {
            self.fail(field, code, message);
        }
    }

    /// Records an error.
    pub fn fail(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// `Ok` when nothing failed, otherwise 422 with every error.
    ///
    /// # Errors
    /// [`ApiError::Validation`] listing the failures.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}
