//! Compressing an audit's answer on the fly: the evaluation of a full-site
//! audit (most of what `PATCH /audits/{id}/answers` and `GET /audits/{id}`
//! send) with gzip and brotli at the levels the service could use, and what
//! a keyed answer costs to store for replay and send gzipped: compressed
//! twice, or once with the stored stream framed as gzip. Sizes are printed
//! once per level; the times are criterion's.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use dostup::checklist::{AnswerSet, Catalog, Overrides, evaluate};
use dostup::db::idempotency::Deflated;

fn gzip(body: &[u8], level: u32) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(level),
    );
    encoder.write_all(body).unwrap_or_default();
    encoder.finish().map(|v| v.len()).unwrap_or_default()
}

fn brotli(body: &[u8], quality: u32) -> usize {
    let mut out = Vec::with_capacity(body.len() / 4);
    let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, quality, 22);
    encoder.write_all(body).unwrap_or_default();
    drop(encoder);
    out.len()
}

fn compression(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checklists");
    let catalog = match Catalog::load_dir(&dir) {
        Ok(catalog) => catalog,
        Err(e) => panic!("shipped checklists must load:\n{e}"),
    };
    let text = std::fs::read_to_string(dir.join("examples/typical-older-building.json"))
        .unwrap_or_default();
    let answers = match AnswerSet::from_json(&text) {
        Ok(a) => a,
        Err(e) => panic!("typical-older-building: {e}"),
    };
    let body = match evaluate(&catalog, None, &answers, &Overrides::new())
        .map(|e| serde_json::to_vec(&e))
    {
        Ok(Ok(body)) => body,
        other => panic!("the example must evaluate and serialise: {other:?}"),
    };
    eprintln!("evaluation: {} bytes", body.len());
    for level in [1, 2, 6] {
        eprintln!("gzip {level}: {} bytes", gzip(&body, level));
        c.bench_function(&format!("gzip/{level}"), |b| {
            b.iter(|| gzip(black_box(&body), level));
        });
    }
    c.bench_function("keyed/deflate+gzip", |b| {
        b.iter(|| {
            let stored = Deflated::new(black_box(&body));
            (stored, gzip(black_box(&body), 1))
        });
    });
    c.bench_function("keyed/deflate+frame", |b| {
        b.iter(|| {
            let stored = Deflated::new(black_box(&body));
            let sent = stored.to_gzip(black_box(&body)).len();
            (stored, sent)
        });
    });
    for quality in [1, 2, 4] {
        eprintln!("brotli {quality}: {} bytes", brotli(&body, quality));
        c.bench_function(&format!("brotli/{quality}"), |b| {
            b.iter(|| brotli(black_box(&body), quality));
        });
    }
}

criterion_group!(benches, compression);
criterion_main!(benches);
