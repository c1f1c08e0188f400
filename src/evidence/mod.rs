//! Photo ingest: recognise the format from the bytes, refuse what is not a
//! plain JPEG, PNG or WebP (HEIC, polyglots, bombs, truncated files), read
//! EXIF, apply the orientation and make the thumbnails reviewers look at.
//! Pure and blocking: callers run it off the async runtime, a few at a time.

mod exif;
mod format;
mod plausibility;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

pub use exif::ExifInfo;
pub use format::ImageKind;
pub use plausibility::{AuditWindow, Flag, SiteLocation, distance_m, flags};

/// Longest side of the two thumbnails, in pixels.
pub const THUMBNAIL_SIZES: [u32; 2] = [320, 1280];

/// What an upload may be.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Bytes of the original file.
    pub max_bytes: u64,
    /// Pixels along either side.
    pub max_side: u32,
    /// Width × height.
    pub max_pixels: u64,
    /// Memory the decoder may allocate.
    pub max_decoder_bytes: u64,
}

impl Default for IngestLimits {
    /// 40 MB, 16 384 px per side, 100 megapixels: above any phone camera
    /// of today, far below what would exhaust the server.
    fn default() -> Self {
        Self {
            max_bytes: 40 * 1024 * 1024,
            max_side: 16_384,
            max_pixels: 100_000_000,
            max_decoder_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Why a file is not accepted as evidence. Each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("{found} is not accepted; send the photo as JPEG (PNG and WebP work too)")]
    UnsupportedFormat { found: &'static str },
    #[error(
        "the image is {width}×{height} pixels; at most {max_side} per side and {max_pixels} in all are accepted"
    )]
    DimensionsTooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
    #[error(
        "the file carries {0} bytes after the end of the image (an embedded file or a motion photo); send a plain image"
    )]
    TrailingData(u64),
}

impl IngestError {
    /// Stable kebab-case code for the API.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty-file",
            Self::TooLarge { .. } => "file-too-large",
            Self::UnsupportedFormat { .. } => "unsupported-image-format",
            Self::DimensionsTooLarge { .. } => "image-too-large",
            Self::Corrupt(_) => "corrupt-image",
            Self::TrailingData(_) => "trailing-data",
        }
    }
}

/// A validated photo, ready to store.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub kind: ImageKind,
    /// As displayed, after the EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub exif: ExifInfo,
    /// JPEG thumbnails, `(longest side, bytes)`, in [`THUMBNAIL_SIZES`] order.
    pub thumbnails: Vec<(u32, Vec<u8>)>,
}

/// Validates a whole file and makes its thumbnails.
///
/// # Errors
/// [`IngestError`] saying precisely what is wrong; nothing is half done.
pub fn ingest(bytes: &[u8], limits: &IngestLimits) -> Result<Ingested, IngestError> {
    if bytes.is_empty() {
        return Err(IngestError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(IngestError::TooLarge {
            max: limits.max_bytes,
        });
    }
    let kind = format::sniff(bytes)?;
    let end = format::structural_end(kind, bytes)?;
    let trailing = &bytes[end.min(bytes.len())..];
    if trailing.iter().any(|b| *b != 0) {
        return Err(IngestError::TrailingData(trailing.len() as u64));
    }

    // Dimensions from the header first: a bomb is refused before a single
    // pixel is allocated.
    let (width, height) = reader(bytes, kind)?
        .into_dimensions()
        .map_err(|e| IngestError::Corrupt(e.to_string()))?;
    if width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(IngestError::DimensionsTooLarge {
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }

    let mut reader = reader(bytes, kind)?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_decoder_bytes);
    reader.limits(decoder_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| IngestError::Corrupt(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| IngestError::Corrupt(e.to_string()))?;
    image.apply_orientation(orientation);

    let exif = exif::read(bytes);
    let thumbnails = thumbnails(&image)?;
    Ok(Ingested {
        kind,
        width: image.width(),
        height: image.height(),
        exif,
        thumbnails,
    })
}

fn reader(bytes: &[u8], kind: ImageKind) -> Result<ImageReader<Cursor<&[u8]>>, IngestError> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(kind.image_format());
    Ok(reader)
}

/// Downscales once to the largest size, then from there to the smaller
/// ones: far cheaper than scaling the full picture twice.
fn thumbnails(image: &DynamicImage) -> Result<Vec<(u32, Vec<u8>)>, IngestError> {
    let mut out = Vec::with_capacity(THUMBNAIL_SIZES.len());
    let mut previous: Option<DynamicImage> = None;
    for size in THUMBNAIL_SIZES.iter().rev() {
        let source = previous.as_ref().unwrap_or(image);
        let scaled = if source.width() > *size || source.height() > *size {
            source.thumbnail(*size, *size)
        } else {
            source.clone()
        };
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 82)
            .encode_image(&scaled.to_rgb8())
            .map_err(|e| IngestError::Corrupt(e.to_string()))?;
        out.push((*size, jpeg));
        previous = Some(scaled);
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests;
