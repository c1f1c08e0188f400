//! Hand-computed ratings over the shipped order 344н methodology.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::checklist::Catalog;
use crate::checklist::methodology::MethodologyKind;

use crate::checklist::shipped::catalog;

fn nok_scheme(catalog: &Catalog) -> Scheme<'_> {
    let m = catalog.methodology("nok-344n").unwrap();
    let MethodologyKind::Nok(nok) = m.kind() else {
        panic!("nok")
    };
    Scheme::Nok {
        nok,
        rating: m.rating().unwrap(),
        sites: m.sites(),
    }
}

/// A site meeting `met_3_1` of the 3.1 conditions and `met_3_2` of the 3.2 ones
/// (the first ones in order), the rest not met.
fn site(n: u128, met_3_1: usize, met_3_2: usize) -> SiteResult {
    let met = |i: usize, n: usize| if i <= n { Tri::Met } else { Tri::NotMet };
    let statuses = (1..=5)
        .map(|i| met(i, met_3_1))
        .chain((1..=6).map(|i| met(i, met_3_2)))
        .collect();
    SiteResult {
        site_id: Uuid::from_u128(n),
        audit_id: Uuid::from_u128(1000 + n),
        audit_version: 3,
        release: "r".to_owned(),
        methodology_version: "1.1.0".to_owned(),
        statuses,
    }
}

fn k(s: &InstitutionScore, id: &str) -> Option<f64> {
    s.criteria.and_then(|c| c.get(id))
}

fn imported(k: [f64; 4], respondents: u64, satisfied: u64) -> Imported {
    Imported {
        k1: Some(k[0]),
        k2: Some(k[1]),
        k4: Some(k[2]),
        k5: Some(k[3]),
        indicators: BTreeMap::new(),
        survey: Some(Survey {
            disabled_respondents: respondents,
            disabled_satisfied: satisfied,
        }),
    }
}

fn institution(
    n: u128,
    name: &str,
    sites: Vec<SiteResult>,
    imported: Option<Imported>,
) -> InstitutionInput {
    InstitutionInput {
        id: Uuid::from_u128(n),
        name: name.to_owned(),
        sites,
        imported,
        imports: vec![Uuid::from_u128(9)],
    }
}

#[test]
fn the_worked_example_gives_k3_71_and_the_mean_of_five() {
    let catalog = catalog();
    // 3 of 5, 4 of 6, 70 % → K3 = 18 + 32 + 21 = 71.
    let (scores, _) = compute(
        nok_scheme(&catalog),
        vec![institution(
            1,
            "Библиотека",
            vec![site(1, 3, 4)],
            Some(imported([90.0, 85.5, 95.0, 80.25], 10, 7)),
        )],
    );
    let s = &scores[0];
    let k3 = s.k3.as_ref().unwrap();
    assert_eq!(
        (k3.p3_1, k3.p3_2, k3.p3_3),
        (Some(60.0), Some(80.0), Some(70.0))
    );
    assert_eq!(k(s, "K3"), Some(71.0));
    // (90 + 85.5 + 71 + 95 + 80.25) / 5 = 421.75 / 5 = 84.35
    assert_eq!(s.score, Some(84.35));
    assert_eq!(s.rank, Some(1));
    assert!(s.complete && s.missing.is_empty());
}

#[test]
fn a_region_ranks_with_shared_ranks_and_lists_the_incomplete_last() {
    let catalog = catalog();
    let same = || Some(imported([80.0, 80.0, 80.0, 80.0], 10, 10));
    let inputs = vec![
        // K3 = 0.3·100 + 0.4·100 + 0.3·100 = 100; Sn = (80·4 + 100) / 5 = 84
        institution(1, "Школа № 1", vec![site(1, 5, 6)], same()),
        // Two sites, all_sites: 3.1 counts 3 (the lesser), 3.2 counts 4 → 60, 80, 100
        // K3 = 18 + 32 + 30 = 80; Sn = (320 + 80) / 5 = 80
        institution(2, "Школа № 2", vec![site(2, 5, 6), site(3, 3, 4)], same()),
        // The same figures as № 2: the same rank.
        institution(3, "Гимназия", vec![site(4, 3, 4)], same()),
        // No survey counts: K3 unknown, so Sn is not computed, and it is not ranked.
        institution(
            4,
            "Лицей",
            vec![site(5, 5, 6)],
            Some(Imported {
                survey: None,
                ..imported([100.0, 100.0, 100.0, 100.0], 0, 0)
            }),
        ),
        // Nothing imported at all.
        institution(5, "Детский сад", vec![site(6, 1, 1)], None),
    ];
    let (scores, summary) = compute(nok_scheme(&catalog), inputs);
    let table: Vec<(&str, Option<u32>, Option<f64>)> = scores
        .iter()
        .map(|s| (s.name.as_str(), s.rank, s.score))
        .collect();
    assert_eq!(
        table,
        vec![
            ("Школа № 1", Some(1), Some(84.0)),
            ("Гимназия", Some(2), Some(80.0)),
            ("Школа № 2", Some(2), Some(80.0)),
            ("Детский сад", None, None),
            ("Лицей", None, None),
        ]
    );
    let lyceum = scores.iter().find(|s| s.name == "Лицей").unwrap();
    assert_eq!(k(lyceum, "K1"), Some(100.0));
    assert_eq!(k(lyceum, "K3"), None, "never silently 0");
    assert!(
        lyceum.missing.iter().any(|m| m.contains("3.3")),
        "{:?}",
        lyceum.missing
    );
    let kindergarten = scores.iter().find(|s| s.name == "Детский сад").unwrap();
    assert!(kindergarten.missing.iter().any(|m| m == "K1: not imported"));

    assert_eq!(summary.institutions, 5);
    assert_eq!(summary.ranked, 3);
    assert_eq!(summary.score.max, Some(84.0));
    assert_eq!(summary.score.min, Some(80.0));
    // (84 + 80 + 80) / 3 = 81.333… → 81.33
    assert_eq!(summary.score.mean, Some(81.33));
    assert_eq!(summary.gap, Some(4.0));
    // K3 of the three ranked and the lyceum's unknown one: 100, 80, 80 known.
    assert_eq!(summary.criteria["K3"].count, 3);
    assert_eq!(summary.criteria["K1"].count, 4);
    assert_eq!(summary.criteria["K1"].mean, Some(85.0));
}

#[test]
fn a_reviewer_override_changes_k3_through_the_conditions() {
    let catalog = catalog();
    let with = |met_3_1| {
        compute(
            nok_scheme(&catalog),
            vec![institution(
                1,
                "ЦСО",
                vec![site(1, met_3_1, 6)],
                Some(imported([70.0, 70.0, 70.0, 70.0], 20, 15)),
            )],
        )
        .0
        .remove(0)
    };
    // 5 of 5, 6 of 6, 75 %: 30 + 40 + 22.5 = 92.5; Sn = (280 + 92.5) / 5 = 74.5
    assert_eq!(k(&with(5), "K3"), Some(92.5));
    assert_eq!(with(5).score, Some(74.5));
    // The reviewer fails the parking: 4 of 5 → 24 + 40 + 22.5 = 86.5; Sn = 73.3
    assert_eq!(k(&with(4), "K3"), Some(86.5));
    assert_eq!(with(4).score, Some(73.3));
}

#[test]
fn criteria_come_from_indicators_and_variants() {
    let catalog = catalog();
    let mut values = imported([0.0; 4], 4, 4);
    values.k1 = None;
    values.k2 = None;
    // K1 = 0.3·90 + 0.3·80 + 0.4·75 = 27 + 24 + 30 = 81
    values.indicators.insert("1.1".into(), 90.0);
    values.indicators.insert("1.2".into(), 80.0);
    values.indicators.insert("1.3".into(), 75.0);
    // K2 without 2.2: 0.5·70 + 0.5·75.55 = 72.775 → 72.78
    values.indicators.insert("2.1".into(), 70.0);
    values.indicators.insert("2.3".into(), 75.55);
    let (scores, _) = compute(
        nok_scheme(&catalog),
        vec![institution(1, "ЦСО", vec![site(1, 5, 6)], Some(values))],
    );
    assert_eq!(k(&scores[0], "K1"), Some(81.0));
    assert_eq!(k(&scores[0], "K2"), Some(72.78));
}

#[test]
fn an_unknown_condition_at_one_site_leaves_k3_unknown_under_all_sites() {
    let catalog = catalog();
    let mut unsure = site(2, 5, 6);
    unsure.statuses[1] = Tri::Unknown; // 3.1.2
    let (scores, _) = compute(
        nok_scheme(&catalog),
        vec![institution(
            1,
            "ЦСО",
            vec![site(1, 5, 6), unsure],
            Some(imported([70.0; 4], 20, 15)),
        )],
    );
    assert_eq!(k(&scores[0], "K3"), None);
    assert_eq!(
        scores[0].k3.as_ref().unwrap().conditions.get("3.1.2"),
        Some(Tri::Unknown)
    );
    assert_eq!(scores[0].rank, None);
}

#[test]
fn the_points_scheme_ranks_in_points() {
    let catalog = catalog();
    let m = catalog.methodology("example-region-points").unwrap();
    let MethodologyKind::Points(points) = m.kind() else {
        panic!("points")
    };
    let all_met = |n: u128, met: &[&str]| SiteResult {
        statuses: points
            .entries()
            .iter()
            .map(|e| {
                if met.contains(&e.id()) {
                    Tri::Met
                } else {
                    Tri::NotMet
                }
            })
            .collect(),
        ..site(n, 0, 0)
    };
    let (scores, summary) = compute(
        Scheme::Points {
            points,
            sites: m.sites(),
        },
        vec![
            institution(1, "A", vec![all_met(1, &["parking", "entrance"])], None),
            // any_site: the toilet at one site and the entrance at the other both count.
            institution(
                2,
                "B",
                vec![all_met(2, &["toilet"]), all_met(3, &["entrance"])],
                None,
            ),
        ],
    );
    assert_eq!(scores[0].name, "B");
    assert_eq!(scores[0].score, Some(11.0), "toilet 5 + entrance 6");
    assert_eq!(scores[1].score, Some(9.0), "parking 3 + entrance 6");
    assert_eq!(scores[0].points.as_ref().unwrap().maximum, 31.0);
    assert_eq!(summary.gap, Some(2.0));
}

#[test]
fn a_later_import_replaces_a_criterion_whole_and_keeps_the_others() {
    let mut older = imported([60.0, 50.0, 70.0, 80.0], 10, 5);
    older.indicators.insert("1.1".into(), 90.0);
    let newer = Imported {
        // Corrected indicators of K2; nothing about K1, K4, K5 or the survey.
        indicators: [("2.1", 70.0), ("2.2", 80.0), ("2.3", 90.0)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        ..Imported::default()
    };
    let merged = older.merged(newer);
    assert_eq!(
        merged.k2, None,
        "the old direct K2 gives way to the new indicators"
    );
    assert_eq!(merged.indicators.get("2.2"), Some(&80.0));
    assert_eq!(merged.k1, Some(60.0));
    assert_eq!(merged.indicators.get("1.1"), Some(&90.0));
    assert_eq!(merged.survey.map(|s| s.disabled_satisfied), Some(5));
}
