//! Photo ingest: recognise the format from the bytes, refuse what is not a
//! plain JPEG, PNG or WebP (HEIC, polyglots, bombs, truncated files), read
//! EXIF, apply the orientation and make the thumbnails reviewers look at.
//! Pure and blocking: callers run it off the async runtime, a few at a time.

mod exif;
mod format;
mod plausibility;

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageReader, Limits};

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

    let exif = exif::read(bytes);
    let orientation = exif
        .orientation
        .and_then(|o| u8::try_from(o).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    let mut image = match kind {
        // Phones send JPEG: decode it straight at the smallest scale that
        // still covers the largest thumbnail (the decoder scales in the DCT).
        ImageKind::Jpeg => decode_jpeg_scaled(bytes, limits)?,
        _ => None,
    }
    .map_or_else(|| decode_full(bytes, kind, limits), Ok)?;
    image.apply_orientation(orientation);
    let (width, height) = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    };
    let thumbnails = thumbnails(&image.into_rgb8())?;
    Ok(Ingested {
        kind,
        width,
        height,
        exif,
        thumbnails,
    })
}

/// Decodes any accepted format at full size, within the decoder limits.
fn decode_full(
    bytes: &[u8],
    kind: ImageKind,
    limits: &IngestLimits,
) -> Result<DynamicImage, IngestError> {
    let mut reader = reader(bytes, kind)?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_decoder_bytes);
    reader.limits(decoder_limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| IngestError::Corrupt(e.to_string()))?;
    DynamicImage::from_decoder(decoder).map_err(|e| IngestError::Corrupt(e.to_string()))
}

/// Decodes a JPEG at 1/8, 1/4, 1/2 or full scale, whichever is the smallest
/// that still covers the largest thumbnail: a 12 MP photo is decoded at
/// 2000 × 1500, in a quarter of the memory and far less time. The whole
/// entropy-coded stream is still read, so a corrupt file is still refused.
/// `None` for a colour model other than RGB or grey (CMYK), which the full
/// decoder handles.
fn decode_jpeg_scaled(
    bytes: &[u8],
    limits: &IngestLimits,
) -> Result<Option<DynamicImage>, IngestError> {
    let corrupt = |e: jpeg_decoder::Error| IngestError::Corrupt(e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(
        usize::try_from(limits.max_decoder_bytes).unwrap_or(usize::MAX),
    );
    decoder.read_info().map_err(corrupt)?;
    let largest = THUMBNAIL_SIZES.iter().copied().max().unwrap_or(1280);
    let wanted = u16::try_from(largest).unwrap_or(u16::MAX);
    let (width, height) = decoder.scale(wanted, wanted).map_err(corrupt)?;
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let pixels = decoder.decode().map_err(corrupt)?;
    let (width, height) = (u32::from(width), u32::from(height));
    let short =
        || IngestError::Corrupt("the decoded picture is shorter than its header says".to_owned());
    Ok(match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => Some(DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(width, height, pixels).ok_or_else(short)?,
        )),
        jpeg_decoder::PixelFormat::L8 => Some(DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(width, height, pixels).ok_or_else(short)?,
        )),
        jpeg_decoder::PixelFormat::L16 | jpeg_decoder::PixelFormat::CMYK32 => None,
    })
}

fn reader(bytes: &[u8], kind: ImageKind) -> Result<ImageReader<Cursor<&[u8]>>, IngestError> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(kind.image_format());
    Ok(reader)
}

/// Downscales once to the largest size, then from there to the smaller
/// ones (far cheaper than scaling the full picture twice), with a SIMD
/// convolution, and encodes each as JPEG.
fn thumbnails(image: &image::RgbImage) -> Result<Vec<(u32, Vec<u8>)>, IngestError> {
    let failed = |e: &dyn std::fmt::Display| IngestError::Corrupt(format!("thumbnail: {e}"));
    let mut resizer = fast_image_resize::Resizer::new();
    let options = fast_image_resize::ResizeOptions::new().resize_alg(
        fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::CatmullRom),
    );
    let mut out = Vec::with_capacity(THUMBNAIL_SIZES.len());
    let mut previous: Option<image::RgbImage> = None;
    for size in THUMBNAIL_SIZES.iter().rev() {
        let source = previous.as_ref().unwrap_or(image);
        let (w, h) = fit(source.width(), source.height(), *size);
        let scaled = if (w, h) == source.dimensions() {
            source.clone()
        } else {
            let mut scaled = image::RgbImage::new(w, h);
            resizer
                .resize(source, &mut scaled, &options)
                .map_err(|e| failed(&e))?;
            scaled
        };
        let mut jpeg = Vec::new();
        let (w16, h16) = (
            u16::try_from(w).map_err(|e| failed(&e))?,
            u16::try_from(h).map_err(|e| failed(&e))?,
        );
        jpeg_encoder::Encoder::new(&mut jpeg, 82)
            .encode(scaled.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| failed(&e))?;
        out.push((*size, jpeg));
        previous = Some(scaled);
    }
    out.reverse();
    Ok(out)
}

/// `width × height` scaled so that the longest side is at most `size`,
/// keeping the aspect ratio (never enlarged, never below one pixel).
fn fit(width: u32, height: u32, size: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= size {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(size) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(size).max(1)
    };
    (scale(width), scale(height))
}

#[cfg(test)]
mod tests;
