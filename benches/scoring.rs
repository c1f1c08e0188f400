//! Scoring one full-site audit over all shipped checklists (goal: at most 20 µs median).
//! The catalog loads once, as in the service; the answers are parsed once, as they would
//! be when read from the database.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use dostup::checklist::{AnswerSet, Catalog, Overrides, evaluate};

fn scoring(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checklists");
    let catalog = match Catalog::load_dir(&dir) {
        Ok(catalog) => catalog,
        Err(e) => panic!("shipped checklists must load:\n{e}"),
    };
    let overrides = Overrides::new();
    for example in ["typical-older-building", "accessible-new-building"] {
        let text = std::fs::read_to_string(dir.join("examples").join(format!("{example}.json")))
            .unwrap_or_default();
        let answers = match AnswerSet::from_json(&text) {
            Ok(a) => a,
            Err(e) => panic!("{example}: {e}"),
        };
        c.bench_function(&format!("evaluate/{example}"), |b| {
            b.iter(|| {
                evaluate(black_box(&catalog), None, black_box(&answers), &overrides)
                    .map(|e| e.summary)
            })
        });
        c.bench_function(&format!("evaluate+json/{example}"), |b| {
            b.iter(|| {
                evaluate(black_box(&catalog), None, black_box(&answers), &overrides)
                    .map(|e| serde_json::to_vec(&e).map(|v| v.len()))
            })
        });
        // As an audit's answer writes it: by hand, the rules' fixed parts as rendered.
        c.bench_function(&format!("evaluate+write_json/{example}"), |b| {
            b.iter(|| {
                evaluate(black_box(&catalog), None, black_box(&answers), &overrides).map(|e| {
                    let mut out = Vec::new();
                    e.write_json(&mut out).map(|()| out.len())
                })
            })
        });
    }
}

criterion_group!(benches, scoring);
criterion_main!(benches);
