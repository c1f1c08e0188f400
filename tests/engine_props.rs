//! Property tests: the expression parser and the loader never panic on arbitrary input,
//! and scores stay within 0..=100 whatever the answers.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use dostup::checklist::{AnswerSet, Catalog, ItemKind, Overrides, Survey, check_syntax, evaluate};
use proptest::prelude::*;
use serde_json::{Value, json};

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        Catalog::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checklists"))
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Strings biased towards the expression alphabet, so deep and odd shapes are reached.
fn expression_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("("),
            Just(")"),
            Just("["),
            Just("]"),
            Just("&&"),
            Just("||"),
            Just("!"),
            Just("=="),
            Just("<="),
            Just(">"),
            Just("-"),
            Just("+"),
            Just("*"),
            Just("/"),
            Just("%"),
            Just(" "),
            Just("in"),
            Just("m"),
            Just("cm"),
            Just("1.5"),
            Just("0"),
            Just("\""),
            Just("x"),
            Just("a.b"),
            Just(","),
            Just("answered("),
            Just("has("),
            Just("count("),
            Just("é"),
            Just("."),
        ],
        0..200,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = check_syntax(&s);
    }

    #[test]
    fn parser_never_panics_on_expression_like_text(s in expression_like()) {
        let _ = check_syntax(&s);
    }

    #[test]
    fn loader_never_panics(yaml in any::<String>(), shape in expression_like()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("methodology")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), &yaml).unwrap();
        let doc = format!("id: a\nversion: 1.0.0\nzone: entrance\ntitle: {{ru: a, en: a}}\nitems:\n  - id: x\n    type: boolean\n    question: {{ru: a, en: a}}\nrules:\n  - id: r\n    check: '{}'\n    severity: minor\n    affects: [К]\n    norm: {{document: d, clause: c}}\n    message: {{pass: {{ru: a, en: a}}, fail: {{ru: a, en: a}}}}\n    work: none\n", shape.replace('\'', "''"));
        std::fs::write(dir.path().join("b.yaml"), doc).unwrap();
        let _ = Catalog::load_dir(dir.path());
    }

    #[test]
    fn scores_stay_within_bounds(seed in prop::collection::vec(any::<u8>(), 400), respondents in 0u64..50, satisfied in 0u64..50) {
        let c = catalog();
        let mut set = AnswerSet::default();
        let mut bytes = seed.iter().cycle();
        for cl in c.checklists() {
            for item in cl.items() {
                let b = *bytes.next().unwrap_or(&0);
                if b % 4 == 0 { continue; } // leave some unanswered
                let v: Value = match item.kind() {
                    ItemKind::Boolean => json!(b % 2 == 0),
                    ItemKind::Number { min, max, .. } => json!(min + (max - min) * f64::from(b) / 255.0),
                    ItemKind::Count { min, max } => json!(min + (max - min) * i64::from(b) / 255),
                    ItemKind::Choice(o) => json!(o[usize::from(b) % o.len()].id),
                    ItemKind::MultiChoice(o) => json!(o.iter().enumerate().filter(|(i, _)| b >> i & 1 == 1).map(|(_, o)| o.id.clone()).collect::<Vec<_>>()),
                    ItemKind::Text => json!("заметка"),
                    ItemKind::Photo => continue,
                };
                set.answers.insert(item.key().to_owned(), v);
            }
        }
        set.survey = Some(Survey { disabled_respondents: respondents.max(satisfied), disabled_satisfied: satisfied });
        let e = evaluate(c, None, &set, &Overrides::new()).unwrap();
        let n = e.nok.as_ref().unwrap();
        for p in [n.p3_1, n.p3_2, n.p3_3, n.k3].into_iter().flatten() {
            prop_assert!((0.0..=100.0).contains(&p), "{p}");
        }
        let e = evaluate(c, Some("example-region-points"), &set, &Overrides::new()).unwrap();
        let p = e.points.as_ref().unwrap();
        prop_assert!(p.known_points <= p.maximum);
    }

    /// K3 is a weighted mean rounded half up to two decimals: it stays within 0..100
    /// and always is a two-decimal number (no 70.99999999999999).
    #[test]
    fn k3_is_a_two_decimal_number_within_bounds(a in 0u32..=5, b in 0u32..=6, s in 0u64..500, extra in 0u64..500) {
        let weights = [0.3, 0.4, 0.3];
        let p3_3 = (s * 10_000).checked_div(s + extra).map_or(0.0, |h| h as f64 / 100.0);
        let p = [f64::from(a * 20), f64::from((b * 20).min(100)), p3_3];
        let k = dostup::checklist::methodology::nok::k3(weights, p);
        prop_assert!((0.0..=100.0).contains(&k), "{k}");
        prop_assert_eq!(format!("{k}"), format!("{}", (k * 100.0).round() / 100.0));
        prop_assert!(format!("{k}").split('.').nth(1).is_none_or(|d| d.len() <= 2), "{k}");
    }
}
