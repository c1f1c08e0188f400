//! Test pictures built in memory: plain JPEGs, JPEGs carrying EXIF with a
//! capture time and GPS position (as phones write them), PNG bombs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

/// A JPEG of `width` × `height` with a gradient.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out
}

/// A PNG of `width` × `height`.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([10, 200, 30]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A tiny valid PNG whose header claims `width` × `height`.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(4, 4);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// What a phone writes into EXIF.
pub struct Exif<'a> {
    pub make: &'a str,
    /// `YYYY:MM:DD HH:MM:SS`.
    pub taken: &'a str,
    pub latitude: f64,
    pub longitude: f64,
    pub orientation: u16,
}

fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32) {
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
}

fn rationals(degrees: f64) -> Vec<u8> {
    let d = degrees.abs().floor();
    let m = ((degrees.abs() - d) * 60.0).floor();
    let s = ((degrees.abs() - d - m / 60.0) * 3600.0 * 1000.0).round();
    let mut out = Vec::new();
    for (num, den) in [(d as u32, 1u32), (m as u32, 1), (s as u32, 1000)] {
        out.extend_from_slice(&num.to_le_bytes());
        out.extend_from_slice(&den.to_le_bytes());
    }
    out
}

/// `jpeg` with an EXIF APP1 segment inserted after SOI.
pub fn with_exif(jpeg: &[u8], exif: &Exif<'_>) -> Vec<u8> {
    let make = format!("{}\0", exif.make);
    let taken = format!("{}\0", exif.taken);
    let ifd0 = 8u32;
    let make_at = ifd0 + 2 + 4 * 12 + 4;
    let exif_ifd = make_at + make.len() as u32;
    let taken_at = exif_ifd + 2 + 12 + 4;
    let gps_ifd = taken_at + taken.len() as u32;
    let lat_at = gps_ifd + 2 + 4 * 12 + 4;
    let lon_at = lat_at + 24;

    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&ifd0.to_le_bytes());
    tiff.extend_from_slice(&4u16.to_le_bytes());
    entry(&mut tiff, 0x010F, 2, make.len() as u32, make_at);
    entry(&mut tiff, 0x0112, 3, 1, u32::from(exif.orientation));
    entry(&mut tiff, 0x8769, 4, 1, exif_ifd);
    entry(&mut tiff, 0x8825, 4, 1, gps_ifd);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(make.as_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut tiff, 0x9003, 2, taken.len() as u32, taken_at);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(taken.as_bytes());
    tiff.extend_from_slice(&4u16.to_le_bytes());
    let lat_ref = if exif.latitude < 0.0 { b'S' } else { b'N' };
    let lon_ref = if exif.longitude < 0.0 { b'W' } else { b'E' };
    entry(&mut tiff, 0x0001, 2, 2, u32::from(lat_ref));
    entry(&mut tiff, 0x0002, 5, 3, lat_at);
    entry(&mut tiff, 0x0003, 2, 2, u32::from(lon_ref));
    entry(&mut tiff, 0x0004, 5, 3, lon_at);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(&rationals(exif.latitude));
    tiff.extend_from_slice(&rationals(exif.longitude));

    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}
