//! Engine integration tests over the shipped checklists: they lint clean, the example
//! audits give the hand-computed results (golden snapshots), and the arithmetic of
//! order 344н holds on worked examples.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dostup::checklist::methodology::nok::k3;
use dostup::checklist::{
    AnswerSet, Catalog, CatalogFile, EvalError, Format, Outcome, Override, Overrides, Verdict,
    evaluate, lint, missing_for_submission, score, show, validate_answer,
};
use serde_json::json;

/// No reviewer overrides.
static NO_OVERRIDES: Overrides = Overrides::new();

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checklists")
}

fn catalog() -> Catalog {
    Catalog::load_dir(&dir()).unwrap_or_else(|e| panic!("shipped checklists must load:\n{e}"))
}

fn example(name: &str) -> AnswerSet {
    let text =
        std::fs::read_to_string(dir().join("examples").join(format!("{name}.json"))).unwrap();
    AnswerSet::from_json(&text).unwrap()
}

fn outcome(e: &dostup::checklist::Evaluation<'_>, key: &str) -> Outcome {
    e.rules
        .iter()
        .find(|r| r.rule == key)
        .map(|r| r.outcome)
        .unwrap()
}

/// Compares the evaluation, as serde_json writes it for the API, with its golden snapshot.
/// Rules' norms, categories and messages are written as rendered when the checklists were
/// compiled; re-reading the text in order gives the snapshot the same fields as the
/// evaluation's own, so the snapshot also proves that text the same as before.
fn golden(name: &str, e: &dostup::checklist::Evaluation<'_>) {
    let written = serde_json::to_string(e).unwrap();
    let mut read = serde_json::Deserializer::from_str(&written);
    insta::assert_json_snapshot!(name, serde_transcode::Transcoder::new(&mut read));
}

#[test]
fn shipped_checklists_lint_clean_and_cover_every_zone() {
    let report = lint(&dir());
    assert!(report.ok, "{}", report.text);
    let c = catalog();
    let zones: BTreeSet<_> = c.checklists().iter().map(|c| c.zone()).collect();
    assert_eq!(
        zones.len(),
        8,
        "seven order 627 zones plus organisational services"
    );
    assert!(c.rule_count() >= 80, "{} rules", c.rule_count());
    assert_eq!(c.default_methodology().id(), "nok-344n");
    for cl in c.checklists() {
        assert_eq!(cl.sha256().len(), 64);
    }
}

#[test]
fn golden_accessible_new_building() {
    let c = catalog();
    let answers = example("accessible-new-building");
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    let nok = e.nok.as_ref().unwrap();
    assert_eq!(
        (nok.p3_1, nok.p3_2, nok.p3_3, nok.k3),
        (Some(100.0), Some(100.0), Some(95.0), Some(98.5))
    );
    assert_eq!(
        e.passport
            .as_ref()
            .and_then(|p| p.site.as_ref())
            .map(|s| s.code.as_str()),
        Some("ДП-В")
    );
    assert!(e.complete);
    golden("accessible_new_building", &e);
}

#[test]
fn golden_typical_older_building_is_the_worked_example() {
    let c = catalog();
    let answers = example("typical-older-building");
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    let nok = e.nok.as_ref().unwrap();
    // 3 of 5, 4 of 6 and 7 of 10 satisfied: 18 + 32 + 21 = 71.
    assert_eq!(
        (nok.p3_1, nok.p3_2, nok.p3_3, nok.k3),
        (Some(60.0), Some(80.0), Some(70.0), Some(71.0))
    );
    assert_eq!(outcome(&e, "entrance_ramp.slope"), Outcome::Fail);
    assert_eq!(outcome(&e, "sanitary.accessible_toilet"), Outcome::Fail);
    assert_eq!(
        outcome(&e, "entrance_ramp.ramp_condition"),
        Outcome::NeedsReview
    );
    golden("typical_older_building", &e);
}

#[test]
fn golden_incomplete_audit_never_scores_unknown_as_zero() {
    let c = catalog();
    let answers = example("incomplete-audit");
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    let nok = e.nok.as_ref().unwrap();
    assert_eq!((nok.p3_1, nok.p3_2, nok.k3), (None, None, None));
    assert!(!e.complete);
    assert_eq!(outcome(&e, "entrance_ramp.slope"), Outcome::Incomplete);
    assert!(
        e.completeness
            .missing_answers
            .contains(&"sanitary.accessible_toilet")
    );
    golden("incomplete_audit", &e);
}

#[test]
fn worked_example_and_cap() {
    assert_eq!(k3([0.3, 0.4, 0.3], [60.0, 80.0, 70.0]), 71.0);
    // Six 3.2 conditions give 100, not 120: the new building meets all six.
    let c = catalog();
    let answers = example("accessible-new-building");
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    let nok = e.nok.as_ref().unwrap();
    assert_eq!(
        nok.conditions_3_2.iter().filter(|c| c.points > 0.0).count(),
        6
    );
    assert_eq!(nok.p3_2, Some(100.0));
}

#[test]
fn unknown_is_not_false() {
    let c = catalog();
    let mut answers = example("accessible-new-building");
    // Unanswered: the rule is incomplete, never a failure.
    answers.answers.remove("sanitary.door_width");
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "sanitary.door_width"), Outcome::Incomplete);
    assert_eq!(e.nok.as_ref().and_then(|n| n.p3_1), None);
    // Answered "no toilet": false, and the dependent rules do not apply.
    answers
        .answers
        .insert("sanitary.accessible_toilet".into(), json!(false));
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "sanitary.accessible_toilet"), Outcome::Fail);
    assert_eq!(outcome(&e, "sanitary.door_width"), Outcome::NotApplicable);
    assert_eq!(e.nok.as_ref().and_then(|n| n.p3_1), Some(80.0));
}

#[test]
fn kleene_or_short_circuits_unknown() {
    let c = catalog();
    let mut answers = example("accessible-new-building");
    // slope <= 5 is true, so the unknown rise does not matter: true || unknown = true.
    for (k, v) in [
        ("entrance.level_entrance", json!(false)),
        ("entrance.entrance_stairs", json!(false)),
        ("entrance_ramp.ramp_present", json!(true)),
        ("entrance_ramp.ramp_slope", json!(4.5)),
    ] {
        answers.answers.insert(k.into(), v);
    }
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "entrance_ramp.slope"), Outcome::Pass);
    // false && unknown = false: a steep ramp fails whatever the rise.
    answers
        .answers
        .insert("entrance_ramp.ramp_slope".into(), json!(12));
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "entrance_ramp.slope"), Outcome::Fail);
}

#[test]
fn overrides_replace_the_outcome_and_keep_the_engines() {
    let c = catalog();
    let answers = example("typical-older-building");
    let mut overrides = Overrides::new();
    overrides.insert(
        "entrance_ramp.ramp_condition".into(),
        Override {
            verdict: Verdict::Pass,
            comment: "фото: покрытие целое".into(),
        },
    );
    overrides.insert(
        "sanitary.accessible_toilet".into(),
        Override {
            verdict: Verdict::Pass,
            comment: "санузел в соседнем корпусе".into(),
        },
    );
    let e = evaluate(&c, None, &answers, &overrides).unwrap();
    let r = e
        .rules
        .iter()
        .find(|r| r.rule == "sanitary.accessible_toilet")
        .unwrap();
    assert_eq!(
        (r.outcome, r.engine_outcome),
        (Outcome::Pass, Outcome::Fail)
    );
    assert_eq!(e.summary.needs_review, 0);
    let bad: Overrides = [(
        "nope.rule".to_owned(),
        Override {
            verdict: Verdict::Fail,
            comment: String::new(),
        },
    )]
    .into();
    assert_eq!(
        evaluate(&c, None, &answers, &bad).err(),
        Some(EvalError::UnknownRule("nope.rule".into()))
    );
}

#[test]
fn points_scheme_is_data() {
    let c = catalog();
    let answers = example("accessible-new-building");
    let e = evaluate(&c, Some("example-region-points"), &answers, &NO_OVERRIDES).unwrap();
    let p = e.points.as_ref().unwrap();
    assert_eq!((p.total, p.maximum), (Some(31.0), 31.0));
    assert!(e.nok.is_none());
}

#[test]
fn answer_validation_codes() {
    let c = catalog();
    let code = |k: &str, v: serde_json::Value| validate_answer(&c, k, &v).err().map(|e| e.code);
    assert_eq!(code("entrance_ramp.ramp_slope", json!(4.5)), None);
    assert_eq!(code("entrance_ramp.ramp_slope", json!(null)), None);
    assert_eq!(code("entrance_ramp.nope", json!(1)), Some("unknown-item"));
    assert_eq!(
        code("entrance_ramp.ramp_slope", json!("steep")),
        Some("wrong-type")
    );
    assert_eq!(
        code("entrance_ramp.ramp_slope", json!(150)),
        Some("out-of-range")
    );
    assert_eq!(
        code("entrance_ramp.ramp_handrails", json!("left")),
        Some("unknown-option")
    );
    assert_eq!(
        code("routes.corridor_width", json!({"value": 150, "unit": "cm"})),
        None
    );
    assert_eq!(
        code(
            "routes.corridor_width",
            json!({"value": 5, "unit": "percent"})
        ),
        Some("unit-mismatch")
    );
    assert_eq!(
        code("services.staff_trained_count", json!(1.5)),
        Some("not-an-integer")
    );
    assert_eq!(
        code("sanitary.grab_bars", json!(["folding", "folding"])),
        Some("duplicate-option")
    );
}

#[test]
fn converted_units_are_compared_in_base_units() {
    let c = catalog();
    let mut answers = example("accessible-new-building");
    answers.answers.insert(
        "routes.corridor_width".into(),
        json!({"value": 149, "unit": "cm"}),
    );
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "routes.corridor_width"), Outcome::Fail);
    let r = e
        .rules
        .iter()
        .find(|r| r.rule == "routes.corridor_width")
        .unwrap();
    assert_eq!(
        serde_json::to_value(&r.values).unwrap(),
        json!({"routes.corridor_width": {"value": 149, "unit": "cm"}})
    );
}

#[test]
fn submission_lists_missing_answers_and_photos() {
    let c = catalog();
    let answers = example("typical-older-building");
    let missing = missing_for_submission(&c, &answers, &BTreeSet::new()).unwrap();
    assert!(
        missing.iter().all(|m| m.code == "photo-required"),
        "{missing:?}"
    );
    assert!(missing.iter().any(|m| m.item == "entrance_ramp.ramp_slope"));
    let photos: BTreeSet<String> = missing.iter().map(|m| m.item.clone()).collect();
    assert!(
        missing_for_submission(&c, &answers, &photos)
            .unwrap()
            .is_empty()
    );
    let inc = example("incomplete-audit");
    let missing = missing_for_submission(&c, &inc, &photos).unwrap();
    assert!(
        missing
            .iter()
            .any(|m| m.item == "entrance_ramp.ramp_slope" && m.code == "answer-required")
    );
}

#[test]
fn cli_functions_render() {
    let c = catalog();
    let json = show(&c, "entrance_ramp", Format::Json).unwrap();
    assert!(json.contains("\"unit\": \"percent\""));
    assert!(show(&c, "nope", Format::Text).is_err());
    let text = std::fs::read_to_string(dir().join("examples/typical-older-building.json")).unwrap();
    let out = score(&c, &text, None, Format::Text).unwrap();
    assert!(out.contains("K3 = 71"), "{out}");
    assert!(matches!(
        score(&c, &text, Some("passport-627"), Format::Json),
        Err(dostup::checklist::CliError::Eval(
            EvalError::NotAScoringMethodology(_)
        ))
    ));
}

const EXAMPLES: [&str; 3] = [
    "accessible-new-building",
    "typical-older-building",
    "incomplete-audit",
];

fn evaluation_json(c: &Catalog, name: &str) -> serde_json::Value {
    let answers = example(name);
    let e = evaluate(c, None, &answers, &NO_OVERRIDES).unwrap();
    serde_json::to_value(&e).unwrap()
}

#[test]
fn catalog_rebuilt_from_published_files_scores_the_same() {
    let files = Catalog::read_files(&dir()).unwrap();
    assert!(files.iter().any(|f| f.methodology) && files.iter().any(|f| !f.methodology));
    let loaded = catalog();
    let rebuilt = Catalog::from_files(&files).unwrap_or_else(|e| panic!("{e}"));
    // As a database returns them: paths relative to the catalog, in any order.
    let stored: Vec<CatalogFile> = files
        .iter()
        .rev()
        .map(|f| CatalogFile {
            path: f.path.strip_prefix(dir()).unwrap().to_path_buf(),
            ..f.clone()
        })
        .collect();
    let restored = Catalog::from_files(&stored).unwrap_or_else(|e| panic!("{e}"));
    for name in EXAMPLES {
        let expected = evaluation_json(&loaded, name);
        assert_eq!(evaluation_json(&rebuilt, name), expected, "{name}");
        assert_eq!(evaluation_json(&restored, name), expected, "{name}");
    }
}

#[test]
fn catalog_from_files_reports_errors_at_the_given_paths() {
    let files: Vec<CatalogFile> = Catalog::read_files(&dir())
        .unwrap()
        .into_iter()
        .map(|f| {
            let path = f.path.strip_prefix(dir()).unwrap().to_path_buf();
            let text = match path.to_str() {
                Some("entrance_ramp.yaml") => f
                    .text
                    .replace("check: ramp_width >= 0.9 m", "check: ramp_width >= 0.9 kg"),
                Some("methodology/nok-344n.yaml") => f
                    .text
                    .replace("cap_3_2: 100", "cap_3_2: 100\n  cap_3_3: 100"),
                _ => f.text,
            };
            CatalogFile { path, text, ..f }
        })
        .collect();
    let errors = Catalog::from_files(&files).unwrap_err().errors;
    let at: Vec<(&Path, u64)> = errors.iter().map(|e| (e.file.as_path(), e.line)).collect();
    assert!(
        at.iter()
            .any(|(f, _)| *f == Path::new("entrance_ramp.yaml")),
        "{errors:?}"
    );
    assert!(
        at.iter()
            .any(|(f, _)| *f == Path::new("methodology/nok-344n.yaml")),
        "{errors:?}"
    );
    let text = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("entrance_ramp.yaml:"), "{text}");
    assert!(text.contains("unknown unit `kg`"), "{text}");
    assert!(text.contains("methodology/nok-344n.yaml:"), "{text}");
    assert!(text.contains("cap_3_3"), "{text}");
    // Nothing at all is an error too, not a panic or an empty catalog.
    assert!(Catalog::from_files(&[]).is_err());
}

/// Regression: `remote_or_home` was optional and checked `answered(x) && count(x) >= 1`,
/// so an unanswered item failed the rule and silently cost condition 3.2.6 its 20 points.
#[test]
fn unanswered_remote_service_is_unknown_not_a_failure() {
    let c = catalog();
    let mut answers = example("typical-older-building");
    answers.answers.remove("services.remote_or_home");
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "services.remote_or_home"), Outcome::Incomplete);
    let nok = e.nok.as_ref().unwrap();
    let c326 = nok.conditions_3_2.iter().find(|c| c.id == "3.2.6").unwrap();
    assert_eq!(c326.status, dostup::checklist::methodology::Tri::Unknown);
    assert_eq!(nok.k3, None);
    assert!(
        e.completeness
            .missing_answers
            .contains(&"services.remote_or_home")
    );
    // An empty list is the answer "none": a failure, known.
    answers
        .answers
        .insert("services.remote_or_home".into(), json!([]));
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "services.remote_or_home"), Outcome::Fail);
}

/// Regression: the 1.5 m landing rule applied only to ramps rising more than 0.8 m, but
/// every ramp needs landings at the bottom and top (СП 59.13330.2020 5.1.15).
#[test]
fn short_ramps_need_landings_too() {
    let c = catalog();
    let answers = example("typical-older-building");
    assert_eq!(answers.answers["entrance_ramp.ramp_rise"], json!(0.6));
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    assert_eq!(outcome(&e, "entrance_ramp.landings"), Outcome::Fail);
    assert_eq!(outcome(&e, "entrance_ramp.width_max"), Outcome::Pass);
}

#[test]
fn scores_are_exact_decimals() {
    let c = catalog();
    let mut answers = example("typical-older-building");
    // 23 of 160 is exactly 14.375 %: half up gives 14.38 (floating point gave 14.37).
    answers.survey = Some(dostup::checklist::Survey {
        disabled_respondents: 160,
        disabled_satisfied: 23,
    });
    let e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    let nok = e.nok.as_ref().unwrap();
    assert_eq!(nok.p3_3, Some(14.38));
    // 18 + 32 + 4.314 = 54.314 → 54.31
    assert_eq!(nok.k3, Some(54.31));
    let json = serde_json::to_string(&e).unwrap();
    assert!(json.contains("\"k3\":54.31"), "exact decimal in JSON");
}

/// An audit's answer writes its evaluation by hand (`Evaluation::write_json`), copying each
/// rule's result as rendered up to its values. It must be, byte for byte, what serde_json
/// writes for the evaluation: for every example, with each scoring methodology, with and
/// without reviewers' verdicts (whose comments need escaping), and for results changed after
/// the evaluation was made.
#[test]
fn the_evaluation_written_by_hand_is_what_serde_json_writes() {
    fn same(e: &dostup::checklist::Evaluation<'_>, what: &str) {
        let mut by_hand = Vec::new();
        e.write_json(&mut by_hand).unwrap();
        assert_eq!(
            String::from_utf8(by_hand).unwrap(),
            serde_json::to_string(e).unwrap(),
            "{what}"
        );
    }
    let c = catalog();
    let mut overrides = Overrides::new();
    overrides.insert(
        "entrance_ramp.ramp_condition".into(),
        Override {
            verdict: Verdict::Fail,
            comment: "фото: \"покрытие\" \\ разбито\n".into(),
        },
    );
    overrides.insert(
        "sanitary.accessible_toilet".into(),
        Override {
            verdict: Verdict::NotApplicable,
            comment: String::new(),
        },
    );
    let mut noted = example("typical-older-building");
    noted.answers.insert(
        "territory.notes".into(),
        json!("«Вход» \"со двора\"\t\u{1}"),
    );
    let answer_sets = [
        (
            "accessible-new-building",
            example("accessible-new-building"),
        ),
        ("typical-older-building", example("typical-older-building")),
        ("incomplete-audit", example("incomplete-audit")),
        ("typical-older-building with a note", noted),
    ];
    let mut outcomes = BTreeSet::new();
    // Twice: the rendered parts are made by the first evaluation and reused by the next.
    for round in 0..2 {
        for (name, answers) in &answer_sets {
            for methodology in [None, Some("example-region-points")] {
                for verdicts in [&NO_OVERRIDES, &overrides] {
                    let e = evaluate(&c, methodology, answers, verdicts).unwrap();
                    outcomes.extend(e.rules.iter().map(|r| format!("{:?}", r.outcome)));
                    let what = format!(
                        "{name}, {methodology:?}, {} verdicts, round {round}",
                        verdicts.len()
                    );
                    same(&e, &what);
                }
            }
        }
    }
    assert_eq!(
        outcomes.len(),
        5,
        "the examples give every outcome: {outcomes:?}"
    );

    // A methodology that names no passport: no passport methodology, no passport.
    let files: Vec<CatalogFile> = Catalog::read_files(&dir())
        .unwrap()
        .into_iter()
        .map(|mut f| {
            if f.methodology && f.text.contains("id: example-region-points") {
                f.text = f.text.replace("passport: passport-627\n", "");
            }
            f
        })
        .collect();
    let without_passport = Catalog::from_files(&files).unwrap_or_else(|e| panic!("{e}"));
    let e = evaluate(
        &without_passport,
        Some("example-region-points"),
        &answer_sets[1].1,
        &overrides,
    )
    .unwrap();
    assert!(e.passport_methodology.is_none() && e.passport.is_none());
    same(&e, "a methodology without a passport");

    // Results changed after the evaluation are written as they now are, not as rendered.
    let answers = example("typical-older-building");
    let mut e = evaluate(&c, None, &answers, &NO_OVERRIDES).unwrap();
    let passed: Vec<usize> = (0..e.rules.len())
        .filter(|&n| e.rules[n].outcome == Outcome::Pass)
        .collect();
    assert!(passed.len() >= 4, "the example passes rules");
    e.rules[passed[0]].outcome = Outcome::NeedsReview;
    e.rules[passed[1]].review = Some(Override {
        verdict: Verdict::Pass,
        comment: "принято".into(),
    });
    // Failed by both, but still with the message and work of a pass.
    e.rules[passed[2]].outcome = Outcome::Fail;
    e.rules[passed[2]].engine_outcome = Outcome::Fail;
    e.rules[passed[3]].rule = "another.rule";
    // Incomplete by both, with the message of a rule that does not apply.
    let na = (0..e.rules.len())
        .find(|&n| e.rules[n].outcome == Outcome::NotApplicable)
        .unwrap();
    e.rules[na].outcome = Outcome::Incomplete;
    e.rules[na].engine_outcome = Outcome::Incomplete;
    same(&e, "changed results");
}
