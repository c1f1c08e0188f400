//! Instants sent by clients (RFC 3339), bounded to the years 1–9999.
//!
//! chrono reads years up to ±262,143 (`+262142-12-31T23:59:59Z`), but
//! PostgreSQL holds no instant before 4714 BC, and the embedded database
//! keeps instants as text, ordered as written, which a year of other than
//! four digits breaks. A client's instant outside those years is refused
//! like any other bad value: 422 in a body, 400 in a query.

use chrono::{DateTime, Datelike, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The years an instant from a client may fall in.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// `#[serde(default, deserialize_with = "instant::optional")]` for an
/// optional instant.
///
/// # Errors
/// Not RFC 3339, or outside the years 1–9999.
pub fn optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let at = Option::<DateTime<Utc>>::deserialize(deserializer)?;
    match at {
        Some(at) if !YEARS.contains(&at.year()) => Err(D::Error::custom(format!(
            "`{}` is outside the years {}–{}",
            at.to_rfc3339(),
            YEARS.start(),
            YEARS.end()
        ))),
        at => Ok(at),
    }
}
