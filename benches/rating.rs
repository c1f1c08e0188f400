//! Ranking a region of 100,000 institutions (goal: at most 200 ms): criterion 3 from
//! two sites each under the methodology's site rule, the other criteria from imports,
//! Sn, shared ranks and the summary figures. Inputs are built once, outside the timing,
//! as the service reads them from the database; each iteration clones them because
//! `compute` takes them by value, and the clone is measured separately.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dostup::checklist::Catalog;
use dostup::checklist::Survey;
use dostup::checklist::methodology::{MethodologyKind, Tri};
use dostup::rating::{Imported, InstitutionInput, Scheme, SiteResult, compute};
use uuid::Uuid;

const INSTITUTIONS: u32 = 100_000;

/// A small deterministic generator, so every run ranks the same region.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        self.0 >> 33
    }
    fn score(&mut self) -> f64 {
        // Two decimals, as imports carry them; many ties on purpose.
        (self.next() % 2001) as f64 / 20.0
    }
}

fn region() -> Vec<InstitutionInput> {
    let mut rng = Lcg(48);
    // Five 3.1 and six 3.2 conditions, in the scheme's order.
    let conditions = 11;
    (0..INSTITUTIONS)
        .map(|n| {
            let sites = (0..2u128)
                .map(|s| SiteResult {
                    site_id: Uuid::from_u128(u128::from(n) * 2 + s),
                    audit_id: Uuid::from_u128(u128::from(n) * 2 + s + (1 << 64)),
                    audit_version: 7,
                    release: "release".to_owned(),
                    methodology_version: "1.1.0".to_owned(),
                    statuses: (0..conditions)
                        .map(|_| {
                            if rng.next().is_multiple_of(4) {
                                Tri::NotMet
                            } else {
                                Tri::Met
                            }
                        })
                        .collect(),
                })
                .collect();
            let respondents = 5 + rng.next() % 200;
            InstitutionInput {
                id: Uuid::from_u128(u128::from(n)),
                name: format!("Учреждение № {n}"),
                sites,
                imported: Some(Imported {
                    k1: Some(rng.score()),
                    k2: Some(rng.score()),
                    k4: Some(rng.score()),
                    k5: Some(rng.score()),
                    indicators: BTreeMap::new(),
                    survey: Some(Survey {
                        disabled_respondents: respondents,
                        disabled_satisfied: rng.next() % (respondents + 1),
                    }),
                }),
                imports: vec![Uuid::from_u128(1)],
            }
        })
        .collect()
}

fn rating(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checklists");
    let catalog = match Catalog::load_dir(&dir) {
        Ok(catalog) => catalog,
        Err(e) => panic!("shipped checklists must load:\n{e}"),
    };
    let Some(m) = catalog.methodology("nok-344n") else {
        panic!("nok-344n is shipped")
    };
    let (MethodologyKind::Nok(nok), Some(weights)) = (m.kind(), m.rating()) else {
        panic!("nok-344n has criteria weights")
    };
    let scheme = Scheme::Nok {
        nok,
        rating: weights,
        sites: m.sites(),
    };
    let inputs = region();
    let mut group = c.benchmark_group("rating");
    group.sample_size(10);
    group.bench_function("clone inputs/100k", |b| {
        b.iter(|| black_box(inputs.clone()))
    });
    group.bench_function("rank/100k institutions", |b| {
        b.iter_batched(
            || inputs.clone(),
            // The result is returned, so freeing it is not part of the measure.
            |inputs| compute(scheme, inputs),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, rating);
criterion_main!(benches);
