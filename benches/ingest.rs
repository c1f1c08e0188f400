//! Ingest of one 12-megapixel phone JPEG: sniff, structure check, bounded
//! decode, EXIF, orientation, both thumbnails (the SHA-256 is taken while
//! the upload streams in and is measured separately). Compare with
//! `scripts/bench-ingest.sh`, which times `vipsthumbnail -s 1280` on the
//! same picture.
//!
//! Set `DOSTUP_BENCH_JPEG` to a real photo to measure that instead of the
//! generated 4000 × 3000 picture; the generated one is written to
//! `target/bench-12mp.jpg` for the script.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dostup::evidence::{IngestLimits, ingest};
use sha2::{Digest, Sha256};

fn photo() -> Vec<u8> {
    if let Ok(path) = std::env::var("DOSTUP_BENCH_JPEG") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    // Smooth gradients with some texture compress like a real photo (~3–5 MB).
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 23;
        image::Rgb([
            ((x / 16) % 256) as u8 ^ n as u8,
            ((y / 12) % 256) as u8,
            ((x + y) / 28 % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    if let Err(e) =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img)
    {
        panic!("encoding the benchmark picture failed: {e}");
    }
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(target.join("bench-12mp.jpg"), &out);
    out
}

fn ingest_12mp(c: &mut Criterion) {
    let bytes = photo();
    let limits = IngestLimits::default();
    let mut group = c.benchmark_group("ingest");
    group.sample_size(20);
    group.bench_function("12mp-jpeg", |b| {
        b.iter(|| ingest(black_box(&bytes), &limits).map(|i| i.width))
    });
    group.bench_function("12mp-sha256", |b| {
        b.iter(|| Sha256::digest(black_box(&bytes)))
    });
    group.finish();
}

criterion_group!(benches, ingest_12mp);
criterion_main!(benches);
