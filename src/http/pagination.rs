//! Cursor pagination shared by list endpoints: `?limit=&cursor=` in, and
//! `{"items": [...], "next_cursor": ...}` out. Cursors are opaque to clients;
//! today they wrap the last id seen, tomorrow they may hold more.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::ApiError;
use crate::db::{Page, PageRequest};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;

/// Paging query parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// 400 `invalid-query` for a limit out of range, `invalid-cursor` for a
    /// cursor this service did not issue.
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = self.cursor.as_deref().map(decode).transpose()?;
        Ok(PageRequest { after, limit })
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paginated<T> {
    /// Converts a repository page, mapping each row.
    pub fn from_page<R>(page: Page<R>, map: impl FnMut(R) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(map).collect(),
            next_cursor: page.next_after.map(encode),
        }
    }
}

impl<T> Paginated<T> {
    /// Like [`Paginated::from_page`] with a conversion that may fail.
    ///
    /// # Errors
    /// The first conversion error.
    pub fn try_from_page<R, E>(
        page: Page<R>,
        map: impl FnMut(R) -> Result<T, E>,
    ) -> Result<Self, E> {
        Ok(Self {
            items: page.items.into_iter().map(map).collect::<Result<_, _>>()?,
            next_cursor: page.next_after.map(encode),
        })
    }
}

fn encode(after: Uuid) -> String {
    B64.encode(format!("v1:{after}"))
}

fn decode(cursor: &str) -> Result<Uuid, ApiError> {
    B64.decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("v1:").and_then(|id| id.parse().ok()))
        .ok_or_else(invalid_cursor)
}

/// 400 `invalid-cursor`, for every list that pages with a cursor.
pub(super) fn invalid_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid-cursor",
        "the cursor is not one this service issued; start again without it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(id)).ok(), Some(id));
        assert!(decode("not-a-cursor").is_err());
        assert!(decode(&B64.encode("v2:x")).is_err());
    }
}
