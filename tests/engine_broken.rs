//! Broken-file tests: copy the shipped checklists into a temporary directory, break one
//! thing, and check that loading reports it with the precise file:line:column and message.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use dostup::checklist::{Catalog, LoadError, lint};

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checklists")
}

fn copy_yaml(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Loads the shipped files with `old` replaced by `new` in `file`; returns the errors and
/// the (1-based) line of the replacement.
fn broken(file: &str, old: &str, new: &str) -> (Vec<LoadError>, u64) {
    let tmp = tempfile::tempdir().unwrap();
    copy_yaml(&shipped(), tmp.path());
    copy_yaml(
        &shipped().join("methodology"),
        &tmp.path().join("methodology"),
    );
    let path = tmp.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find(old)
        .unwrap_or_else(|| panic!("`{old}` not in {file}"));
    let line = text[..at].matches('\n').count() as u64 + 1;
    std::fs::write(&path, text.replacen(old, new, 1)).unwrap();
    let errors = Catalog::load_dir(tmp.path())
        .err()
        .map(|e| e.errors)
        .unwrap_or_default();
    // The lint report lists the same errors as `file:line:column: message`.
    let report = lint(tmp.path());
    assert!(!report.ok);
    for e in &errors {
        assert!(report.text.contains(&e.to_string()));
    }
    (errors, line)
}

/// The single error, as (file name, line, column, message).
fn single(errors: &[LoadError]) -> (String, u64, u64, String) {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    (
        e.file.file_name().unwrap().to_string_lossy().into_owned(),
        e.line,
        e.column,
        e.message.clone(),
    )
}

#[test]
fn unknown_key() {
    let (errors, line) = broken(
        "territory.yaml",
        "    photo: required_if_fail\n  - id: path_longitudinal_slope",
        "    colour: red\n  - id: path_longitudinal_slope",
    );
    let (file, l, c, m) = single(&errors);
    assert_eq!((file.as_str(), l, c), ("territory.yaml", line, 5));
    assert!(
        m.starts_with("unknown field `colour`, expected one of"),
        "{m}"
    );
}

#[test]
fn bad_expression() {
    let (errors, line) = broken(
        "territory.yaml",
        "check: path_width >= 2.0 m\n",
        "check: path_width >= 2.0 m &&\n",
    );
    assert_eq!(
        single(&errors),
        (
            "territory.yaml".into(),
            line,
            34,
            "in `check`: expected a value, item or `(`, found end of expression".into()
        )
    );
}

#[test]
fn reference_to_a_missing_item() {
    let (errors, line) = broken(
        "entrance_ramp.yaml",
        "check: ramp_width >= 0.9 m",
        "check: ramp_widht >= 0.9 m",
    );
    assert_eq!(
        single(&errors),
        (
            "entrance_ramp.yaml".into(),
            line,
            12,
            "in `check`: unknown item `ramp_widht` in checklist `entrance_ramp`".into()
        )
    );
}

#[test]
fn duplicate_item_id() {
    let (errors, line) = broken(
        "territory.yaml",
        "  - id: path_cross_slope\n",
        "  - id: path_width\n    type: boolean\n    question: {ru: да, en: yes}\n  - id: path_cross_slope\n",
    );
    let (file, l, c, m) = single(&errors);
    assert_eq!(
        (file.as_str(), l, c, m.as_str()),
        ("territory.yaml", line, 9, "duplicate item id `path_width`")
    );
}

#[test]
fn wrong_value_type() {
    let (errors, line) = broken(
        "territory.yaml",
        "    range: [0, 20]\n",
        "    range: [0, wide]\n",
    );
    let (file, l, c, m) = single(&errors);
    assert_eq!((file.as_str(), l), ("territory.yaml", line));
    assert_eq!(c, 16);
    // The parser's "invalid floating point" alone did not say what was expected.
    assert_eq!(m, "expected a number (invalid floating point)");
}

#[test]
fn expression_error_after_escapes_and_cyrillic_points_at_the_right_column() {
    // The position inside a double-quoted scalar counts `\"` as one character of the
    // expression but two of the line.
    let (errors, line) = broken(
        "sanitary.yaml",
        "    check: door_width >= 0.9 m\n",
        "    check: \"cabin_kind == \\\"cabin\\\" && dor_width >= 0.9 m\"\n",
    );
    let (file, l, c, m) = single(&errors);
    assert_eq!((file.as_str(), l), ("sanitary.yaml", line));
    assert_eq!(
        m,
        "in `check`: unknown item `dor_width` in checklist `sanitary`"
    );
    assert_eq!(c, 40, "column of `dor_width`");
}

#[test]
fn unit_mismatch() {
    let (errors, line) = broken(
        "territory.yaml",
        "check: path_cross_slope <= 2\n",
        "check: path_cross_slope <= path_width\n",
    );
    assert_eq!(
        single(&errors),
        (
            "territory.yaml".into(),
            line,
            29,
            "in `check`: unit mismatch in `<=`: `path_cross_slope` is a number in percent but `path_width` is a number in m".into()
        )
    );
}

#[test]
fn unknown_rule_in_a_methodology() {
    let (errors, line) = broken(
        "methodology/nok-344n.yaml",
        "met: passed(services.interpreter)",
        "met: passed(services.interpretr)",
    );
    assert_eq!(
        single(&errors),
        (
            "nok-344n.yaml".into(),
            line,
            19,
            "in `met`: unknown rule `services.interpretr`".into()
        )
    );
}

#[test]
fn unknown_option_in_an_expression() {
    let (errors, line) = broken(
        "sanitary.yaml",
        "has(grab_bars, \"folding\")",
        "has(grab_bars, \"foldable\")",
    );
    let (_, l, c, m) = single(&errors);
    assert_eq!((l, c), (line, 27));
    assert_eq!(
        m,
        "in `check`: unknown option \"foldable\"; expected one of folding, fixed_wall, washbasin"
    );
}

#[test]
fn duplicate_checklist_id_and_all_errors_collected() {
    let tmp = tempfile::tempdir().unwrap();
    copy_yaml(&shipped(), tmp.path());
    copy_yaml(
        &shipped().join("methodology"),
        &tmp.path().join("methodology"),
    );
    std::fs::copy(
        tmp.path().join("lifts.yaml"),
        tmp.path().join("zz_lifts_copy.yaml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(tmp.path().join("routes.yaml")).unwrap();
    std::fs::write(
        tmp.path().join("routes.yaml"),
        text.replacen("version: 1.0.0", "version: 1.0", 1),
    )
    .unwrap();
    let errors = Catalog::load_dir(tmp.path()).err().unwrap().errors;
    let shown: Vec<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{}:{}:{}: {}",
                e.file.file_name().unwrap().to_string_lossy(),
                e.line,
                e.column,
                e.message
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "routes.yaml:4:10: invalid version `1.0`: expected a semantic version such as 1.0.0",
            format!(
                "zz_lifts_copy.yaml:3:5: duplicate checklist id `lifts`, already defined in {}",
                tmp.path().join("lifts.yaml").display()
            )
            .as_str(),
        ]
    );
}

#[test]
fn rating_must_hold_the_five_criteria() {
    let (errors, _) = broken("methodology/nok-344n.yaml", "- id: K5\n", "- id: K6\n");
    let (file, _, _, m) = single(&errors);
    assert_eq!(file, "nok-344n.yaml");
    assert_eq!(
        m,
        "`rating.criteria` must list K1, K2, K3, K4, K5 in order, found K1, K2, K3, K4, K6"
    );
}
