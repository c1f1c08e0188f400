//! Recognising images by their bytes, and finding where an image really
//! ends, so that files with something appended (archives, scripts, motion
//! video) are caught instead of being stored as "photos".

use super::IngestError;

/// Accepted formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Webp,
}

impl ImageKind {
    /// The media type.
    #[must_use]
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    pub(super) fn image_format(self) -> image::ImageFormat {
        match self {
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Png => image::ImageFormat::Png,
            Self::Webp => image::ImageFormat::WebP,
        }
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Identifies the format from the first bytes, whatever the file is called.
///
/// # Errors
/// [`IngestError::UnsupportedFormat`] naming what the bytes look like.
pub fn sniff(bytes: &[u8]) -> Result<ImageKind, IngestError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(ImageKind::Jpeg);
    }
    if bytes.starts_with(PNG_SIGNATURE) {
        return Ok(ImageKind::Png);
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(ImageKind::Webp);
    }
    let found = if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        match &bytes[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                "HEIC/HEIF"
            }
            b"avif" | b"avis" => "AVIF",
            _ => "a video or ISO media file",
        }
    } else if bytes.starts_with(b"GIF8") {
        "GIF"
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        "TIFF"
    } else if bytes.starts_with(b"BM") {
        "BMP"
    } else if bytes.starts_with(b"%PDF") {
        "PDF"
    } else if bytes.starts_with(b"PK\x03\x04") {
        "a ZIP archive"
    } else if bytes
        .iter()
        .take(512)
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "text"
    } else {
        "this file type"
    };
    Err(IngestError::UnsupportedFormat { found })
}

/// Offset just past the image's last structure (JPEG EOI, PNG IEND, the
/// RIFF chunk of WebP).
///
/// # Errors
/// [`IngestError::Corrupt`] when the structure ends early (a truncated file).
pub fn structural_end(kind: ImageKind, bytes: &[u8]) -> Result<usize, IngestError> {
    let end = match kind {
        ImageKind::Jpeg => jpeg_end(bytes),
        ImageKind::Png => png_end(bytes),
        ImageKind::Webp => webp_end(bytes),
    };
    end.ok_or_else(|| {
        IngestError::Corrupt("the file ends before the image does (truncated upload?)".to_owned())
    })
}

/// Walks JPEG segments (skipping their payloads, EXIF thumbnails included)
/// and entropy-coded scans until the EOI marker.
fn jpeg_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 2; // after SOI
    loop {
        // Markers may be preceded by fill bytes 0xFF.
        while *bytes.get(at)? == 0xFF && *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        at += 2;
        match marker {
            0xD9 => return Some(at),
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
                if len < 2 {
                    return None;
                }
                at = at.checked_add(len)?;
                if at > bytes.len() {
                    return None;
                }
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is not
                    // a stuffed zero or a restart marker.
                    loop {
                        if *bytes.get(at)? == 0xFF {
                            let next = *bytes.get(at + 1)?;
                            if next != 0x00 && !(0xD0..=0xD7).contains(&next) && next != 0xFF {
                                break;
                            }
                            at += if next == 0xFF { 1 } else { 2 };
                        } else {
                            at += 1;
                        }
                    }
                }
            }
        }
    }
}

/// Walks PNG chunks to the end of IEND.
fn png_end(bytes: &[u8]) -> Option<usize> {
    let mut at = PNG_SIGNATURE.len();
    loop {
        let len = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        let kind = bytes.get(at + 4..at + 8)?;
        let end = at
            .checked_add(12)?
            .checked_add(usize::try_from(len).ok()?)?;
        if end > bytes.len() {
            return None;
        }
        if kind == b"IEND" {
            return Some(end);
        }
        at = end;
    }
}

/// The RIFF container states its own size.
fn webp_end(bytes: &[u8]) -> Option<usize> {
    let size = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let end = usize::try_from(size).ok()?.checked_add(8)?;
    let end = end + end % 2;
    (end <= bytes.len() + 1).then_some(end.min(bytes.len()))
}
