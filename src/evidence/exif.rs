//! What EXIF says about where, when and with what a photo was taken.
//! Absent or broken EXIF is not an error: it becomes a flag for reviewers.

use std::io::Cursor;

use chrono::{DateTime, NaiveDateTime, Utc};
use exif::{In, Tag, Value};
use serde::Serialize;

/// The EXIF facts Dostup uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExifInfo {
    /// Whether the file had readable EXIF at all.
    pub present: bool,
    /// `DateTimeOriginal`; phones write local time without a zone, so it is
    /// read as UTC unless `OffsetTimeOriginal` says otherwise.
    pub captured_at: Option<DateTime<Utc>>,
    /// WGS 84 degrees.
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Make and model.
    pub device: Option<String>,
    /// EXIF orientation (1–8), already applied to thumbnails.
    pub orientation: Option<u32>,
}

pub(super) fn read(bytes: &[u8]) -> ExifInfo {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return ExifInfo::default();
    };
    let text = |tag| {
        exif.get_field(tag, In::PRIMARY)
            .map(|f| {
                f.display_value()
                    .to_string()
                    .trim_matches('"')
                    .trim()
                    .to_owned()
            })
            .filter(|s| !s.is_empty())
    };
    let captured_at = exif
        .get_field(Tag::DateTimeOriginal, In::PRIMARY)
        .or_else(|| exif.get_field(Tag::DateTime, In::PRIMARY))
        .and_then(|f| match &f.value {
            Value::Ascii(parts) => parts.first().and_then(|p| std::str::from_utf8(p).ok()),
            _ => None,
        })
        .and_then(|s| NaiveDateTime::parse_from_str(s.trim(), "%Y:%m:%d %H:%M:%S").ok())
        .map(|naive| {
            let offset = text(Tag::OffsetTimeOriginal)
                .and_then(|o| chrono::FixedOffset::from_str_offset(&o));
            match offset {
                Some(offset) => naive
                    .and_local_timezone(offset)
                    .single()
                    .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc)),
                None => naive.and_utc(),
            }
        });
    let coordinate = |value: Tag, reference: Tag, negative: &str| -> Option<f64> {
        let field = exif.get_field(value, In::PRIMARY)?;
        let Value::Rational(parts) = &field.value else {
            return None;
        };
        let [d, m, s] = parts.get(0..3)? else {
            return None;
        };
        let degrees = d.to_f64() + m.to_f64() / 60.0 + s.to_f64() / 3600.0;
        if !degrees.is_finite() {
            return None;
        }
        let sign = match text(reference) {
            Some(r) if r.starts_with(negative) => -1.0,
            _ => 1.0,
        };
        Some(sign * degrees)
    };
    let device = match (text(Tag::Make), text(Tag::Model)) {
        (Some(make), Some(model)) if model.starts_with(&make) => Some(model),
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (one, other) => one.or(other),
    };
    ExifInfo {
        present: true,
        captured_at,
        latitude: coordinate(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S"),
        longitude: coordinate(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W"),
        device,
        orientation: exif
            .get_field(Tag::Orientation, In::PRIMARY)
            .and_then(|f| f.value.get_uint(0)),
    }
}

trait FromStrOffset: Sized {
    fn from_str_offset(s: &str) -> Option<Self>;
}

impl FromStrOffset for chrono::FixedOffset {
    /// `+03:00` / `-05:00`.
    fn from_str_offset(s: &str) -> Option<Self> {
        let sign = match s.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (h, m) = s.get(1..)?.split_once(':')?;
        let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
        chrono::FixedOffset::east_opt(secs)
    }
}
