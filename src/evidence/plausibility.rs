//! Flags that tell a reviewer to look twice at a photo. They never reject
//! an upload: a volunteer may have good reasons (GPS off indoors, a photo
//! taken the day before); the reviewer decides.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::ExifInfo;

/// A reason for a second look.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Flag {
    /// No EXIF at all (stripped by a messenger, a screenshot, an edited file).
    NoExif,
    /// EXIF without GPS position.
    NoGps,
    /// Taken farther from the site than the configured distance.
    FarFromSite { distance_m: f64, limit_m: f64 },
    /// Taken outside the audit's window.
    OutsideAuditWindow { captured_at: DateTime<Utc> },
    /// The same picture is evidence in another audit.
    UsedInOtherAudit,
}

/// Where the site is.
#[derive(Debug, Clone, Copy)]
pub struct SiteLocation {
    pub latitude: f64,
    pub longitude: f64,
}

/// When photos for an audit are expected: from a day before it was started
/// until it was submitted (or now), with an hour of clock slack.
#[derive(Debug, Clone, Copy)]
pub struct AuditWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl AuditWindow {
    /// The window for an audit started at `started` and last open at `end`.
    #[must_use]
    pub fn around(started: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            start: started - Duration::days(1),
            end: end + Duration::hours(1),
        }
    }
}

/// Flags for one photo.
#[must_use]
pub fn flags(
    exif: &ExifInfo,
    site: SiteLocation,
    max_distance_m: f64,
    window: AuditWindow,
    used_elsewhere: bool,
) -> Vec<Flag> {
    let mut out = Vec::new();
    if !exif.present {
        out.push(Flag::NoExif);
    }
    match (exif.latitude, exif.longitude) {
        (Some(lat), Some(lon)) => {
            let distance = distance_m(lat, lon, site.latitude, site.longitude);
            if distance > max_distance_m {
                out.push(Flag::FarFromSite {
                    distance_m: distance.round(),
                    limit_m: max_distance_m,
                });
            }
        }
        _ if exif.present => out.push(Flag::NoGps),
        _ => {}
    }
    if let Some(at) = exif.captured_at
        && (at < window.start || at > window.end)
    {
        out.push(Flag::OutsideAuditWindow { captured_at: at });
    }
    if used_elsewhere {
        out.push(Flag::UsedInOtherAudit);
    }
    out
}

/// Great-circle distance in metres (haversine, mean Earth radius).
#[must_use]
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().clamp(0.0, 1.0).asin()
}
