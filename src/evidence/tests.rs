use super::*;

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encodes");
    out
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([10, 200, 30]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encodes");
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

/// A valid tiny PNG whose header claims `width` × `height`: a decompression bomb.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(4, 4);
    // IHDR data starts after the signature (8), length (4) and type (4).
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn a_jpeg_gets_both_thumbnails_within_their_sizes() {
    let ingested = ingest(&jpeg(2000, 1500), &IngestLimits::default()).expect("accepted");
    assert_eq!(ingested.kind, ImageKind::Jpeg);
    assert_eq!((ingested.width, ingested.height), (2000, 1500));
    let sizes: Vec<(u32, u32)> = ingested
        .thumbnails
        .iter()
        .map(|(_, bytes)| {
            image::load_from_memory(bytes)
                .expect("thumbnail decodes")
                .dimensions_pair()
        })
        .collect();
    assert_eq!(sizes, vec![(320, 240), (1280, 960)]);
    assert!(!ingested.exif.present, "a synthetic JPEG has no EXIF");
}

trait Pair {
    fn dimensions_pair(&self) -> (u32, u32);
}
impl Pair for DynamicImage {
    fn dimensions_pair(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
}

#[test]
fn small_pictures_are_not_upscaled() {
    let ingested = ingest(&png(200, 100), &IngestLimits::default()).expect("accepted");
    let first = image::load_from_memory(&ingested.thumbnails[0].1).expect("decodes");
    assert_eq!((first.width(), first.height()), (200, 100));
}

#[test]
fn bad_files_get_precise_errors() {
    let limits = IngestLimits::default();
    assert_eq!(ingest(b"", &limits).unwrap_err().code(), "empty-file");
    assert_eq!(
        ingest(b"just some text pretending to be a photo", &limits)
            .unwrap_err()
            .code(),
        "unsupported-image-format"
    );
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    let err = ingest(&heic, &limits).unwrap_err();
    assert_eq!(err.code(), "unsupported-image-format");
    assert!(
        err.to_string().contains("HEIC") && err.to_string().contains("JPEG"),
        "{err}"
    );

    let full = jpeg(640, 480);
    let truncated = &full[..full.len() / 2];
    assert_eq!(
        ingest(truncated, &limits).unwrap_err().code(),
        "corrupt-image"
    );

    let bomb = png_claiming(100_000, 100_000);
    assert_eq!(
        ingest(&bomb, &limits).unwrap_err().code(),
        "image-too-large"
    );

    let mut polyglot = jpeg(64, 64);
    polyglot.extend_from_slice(b"PK\x03\x04 an archive riding along");
    assert_eq!(
        ingest(&polyglot, &limits).unwrap_err().code(),
        "trailing-data"
    );

    let small = IngestLimits {
        max_bytes: 100,
        ..limits
    };
    assert_eq!(
        ingest(&jpeg(64, 64), &small).unwrap_err().code(),
        "file-too-large"
    );
}

#[test]
fn zero_padding_after_the_image_is_tolerated() {
    let mut padded = jpeg(64, 64);
    padded.extend_from_slice(&[0; 16]);
    assert!(ingest(&padded, &IngestLimits::default()).is_ok());
}

#[test]
fn distances_are_metres_on_the_earth() {
    // Lipetsk to Yelets is about 73 km.
    let d = distance_m(52.6088, 39.5992, 52.6208, 38.5031);
    assert!((d - 74_000.0).abs() < 2_000.0, "{d}");
    assert!(distance_m(52.0, 39.0, 52.0, 39.0) < 0.001);
}

#[test]
fn plausibility_flags_name_what_to_check() {
    let site = SiteLocation {
        latitude: 52.6088,
        longitude: 39.5992,
    };
    let now = chrono::Utc::now();
    let window = AuditWindow::around(now, now);
    assert_eq!(
        flags(&ExifInfo::default(), site, 300.0, window, false),
        vec![Flag::NoExif]
    );
    let far = ExifInfo {
        present: true,
        latitude: Some(52.6208),
        longitude: Some(38.5031),
        captured_at: Some(now - chrono::Duration::days(30)),
        ..ExifInfo::default()
    };
    let found = flags(&far, site, 300.0, window, true);
    assert!(matches!(found[0], Flag::FarFromSite { .. }));
    assert!(matches!(found[1], Flag::OutsideAuditWindow { .. }));
    assert_eq!(found[2], Flag::UsedInOtherAudit);
    let near = ExifInfo {
        present: true,
        latitude: Some(52.6089),
        longitude: Some(39.5993),
        captured_at: Some(now),
        ..ExifInfo::default()
    };
    assert!(flags(&near, site, 300.0, window, false).is_empty());
}
