//! Imports of the criteria audits do not measure (K1, K2, K4, K5 or their
//! indicators) and of the survey counts behind indicator 3.3, from CSV or JSON.
//!
//! Parsing is all or nothing: every bad row and column is reported at once, and
//! nothing is returned for a file with any error. CSV may come as UTF-8 (with or
//! without a byte-order mark) or as Windows-1251, as ministries' spreadsheets often
//! save it; `;` or `,` separate the columns, and with `;` a decimal comma is read.

use std::collections::BTreeMap;

use serde::Deserialize;
use uuid::Uuid;

use super::Imported;
use crate::checklist::Survey;

/// How a row names its institution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstitutionKey {
    Id(Uuid),
    /// ИНН.
    TaxId(String),
}

/// One valid row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Where the row stands: `line 3` of a CSV file, `rows[2]` of a JSON document.
    pub location: String,
    pub institution: InstitutionKey,
    pub year: i32,
    pub values: Imported,
}

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `line 3/k1`, `rows[2].k1`, `line 1` (the header) …
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub rows: Vec<Row>,
    /// `utf-8` or `windows-1251` (CSV); `json`.
    pub encoding: &'static str,
}

const CRITERIA: [&str; 4] = ["k1", "k2", "k4", "k5"];
const INDICATORS: [&str; 12] = [
    "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "4.1", "4.2", "4.3", "5.1", "5.2", "5.3",
];
const RESPONDENTS: &str = "disabled_respondents";
const SATISFIED: &str = "disabled_satisfied";
/// Columns accepted besides the criteria and indicators.
const OTHER: [&str; 6] = [
    "institution_id",
    "tax_id",
    "institution_name",
    "year",
    RESPONDENTS,
    SATISFIED,
];

/// Parses a CSV import.
///
/// # Errors
/// Every problem found, with the line and column.
pub fn parse_csv(bytes: &[u8]) -> Result<Parsed, Vec<Problem>> {
    let (text, encoding) = decode(bytes).map_err(|p| vec![p])?;
    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let delimiter = if first_line.contains(';') { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_lowercase()).collect(),
        Err(e) => return Err(vec![problem("line 1", "malformed-csv", e.to_string())]),
    };
    let mut problems = check_header(&header, "line 1");
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        // Counted from the record's byte offset: right after blank lines
        // and quoted fields that span lines too (the reader's own line
        // count skips blank lines).
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .and_then(|p| {
                let at = usize::try_from(p.byte()).ok()?;
                let rest = text.get(at..)?;
                // The reader's offset may stand on blank lines before the record.
                let start = at + rest.len() - rest.trim_start_matches(['\r', '\n']).len();
                text.get(..start)
            })
            .map_or(0, |before| before.matches('\n').count() + 1);
        let at = format!("line {line}");
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(problem(&at, "malformed-csv", e.to_string()));
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != header.len() {
            problems.push(problem(
                &at,
                "wrong-column-count",
                format!("{} values for {} columns", record.len(), header.len()),
            ));
            continue;
        }
        let cells: BTreeMap<&str, Cell> = header
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| {
                let v = if delimiter == b';' {
                    v.replace(',', ".")
                } else {
                    v.to_owned()
                };
                (k, Cell::Text(v))
            })
            .collect();
        match read_row(&at, "/", &cells) {
            Ok(row) => rows.push(row),
            Err(mut p) => problems.append(&mut p),
        }
    }
    finish(rows, problems, encoding)
}

/// A JSON import: `{"rows": [{"institution_id" | "tax_id", "year", "k1"…, "indicators":
/// {"1.1": …}, "disabled_respondents", "disabled_satisfied"}]}`.
///
/// # Errors
/// Every problem found, with the row index and field.
pub fn parse_json(bytes: &[u8]) -> Result<Parsed, Vec<Problem>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Document {
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| {
        vec![problem(
            "body",
            "malformed-json",
            format!("expected {{\"rows\": [...]}}: {e}"),
        )]
    })?;
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for (n, object) in doc.rows.iter().enumerate() {
        let at = format!("rows[{n}]");
        let mut cells: BTreeMap<&str, Cell> = BTreeMap::new();
        for (key, value) in object {
            if key == "indicators" {
                match value.as_object() {
                    Some(map) => {
                        for (id, v) in map {
                            if INDICATORS.contains(&id.as_str()) {
                                cells.insert(id.as_str(), Cell::Json(v.clone()));
                            } else {
                                problems.push(problem(
                                    &format!("{at}.indicators.{id}"),
                                    "unknown-indicator",
                                    "indicators are 1.1 … 1.3, 2.1 … 2.3, 4.1 … 4.3, 5.1 … 5.3",
                                ));
                            }
                        }
                    }
                    None => problems.push(problem(
                        &format!("{at}.indicators"),
                        "wrong-type",
                        "an object of indicator id → value",
                    )),
                }
            } else {
                cells.insert(key.as_str(), Cell::Json(value.clone()));
            }
        }
        let keys: Vec<String> = cells.keys().map(|k| (*k).to_owned()).collect();
        let mut unknown = check_columns(&keys, &at, ".");
        if !unknown.is_empty() {
            problems.append(&mut unknown);
            continue;
        }
        cells.retain(|_, v| !matches!(v, Cell::Json(serde_json::Value::Null)));
        match read_row(&at, ".", &cells) {
            Ok(row) => rows.push(row),
            Err(mut p) => problems.append(&mut p),
        }
    }
    finish(rows, problems, "json")
}

fn finish(
    rows: Vec<Row>,
    mut problems: Vec<Problem>,
    encoding: &'static str,
) -> Result<Parsed, Vec<Problem>> {
    let mut seen: BTreeMap<(&InstitutionKey, i32), &str> = BTreeMap::new();
    for row in &rows {
        if let Some(first) = seen.insert((&row.institution, row.year), &row.location) {
            problems.push(problem(
                &row.location,
                "duplicate-row",
                format!("the same institution and year as {first}"),
            ));
        }
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push(problem("body", "empty-import", "the file has no rows"));
    }
    if problems.is_empty() {
        Ok(Parsed { rows, encoding })
    } else {
        Err(problems)
    }
}

/// UTF-8 (a byte-order mark is dropped), else Windows-1251.
fn decode(bytes: &[u8]) -> Result<(String, &'static str), Problem> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Windows-1251 decodes any byte, and UTF-8 takes NUL bytes: text that comes
    // out with control characters (UTF-16, a spreadsheet's binary format …) was
    // something else.
    let is_text = |t: &str| crate::domain::refused_control(t).is_none();
    match std::str::from_utf8(bytes) {
        Ok(text) => Some((text.to_owned(), "utf-8")),
        Err(_) => encoding_rs::WINDOWS_1251
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|text| (text.into_owned(), "windows-1251")),
    }
    .filter(|(text, _)| is_text(text))
    .ok_or_else(|| {
        problem(
            "body",
            "unsupported-encoding",
            "the file is neither UTF-8 nor Windows-1251 text; save it as CSV UTF-8 \
             (an .xlsx cannot be imported as it is)",
        )
    })
}

fn check_header(header: &[String], at: &str) -> Vec<Problem> {
    let mut problems = check_columns(header, at, "/");
    if !header.iter().any(|h| h == "year") {
        problems.push(problem(at, "missing-column", "a `year` column is required"));
    }
    if !header
        .iter()
        .any(|h| h == "institution_id" || h == "tax_id")
    {
        problems.push(problem(
            at,
            "missing-column",
            "an `institution_id` or `tax_id` column is required",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in header {
        if !seen.insert(h) {
            problems.push(problem(
                &format!("{at}/{h}"),
                "duplicate-column",
                format!("`{h}` appears twice"),
            ));
        }
    }
    problems
}

fn check_columns(columns: &[String], at: &str, sep: &str) -> Vec<Problem> {
    columns
        .iter()
        .filter(|c| {
            !(CRITERIA.contains(&c.as_str())
                || INDICATORS.contains(&c.as_str())
                || OTHER.contains(&c.as_str()))
        })
        .map(|c| {
            problem(
                &format!("{at}{sep}{c}"),
                "unknown-column",
                format!(
                    "`{c}` is not a column of the import; use institution_id or tax_id, year, \
                     k1, k2, k4, k5, the indicators 1.1 … 5.3, {RESPONDENTS}, {SATISFIED}"
                ),
            )
        })
        .collect()
}

enum Cell {
    Text(String),
    Json(serde_json::Value),
}

impl Cell {
    fn number(&self) -> Option<f64> {
        match self {
            Self::Text(t) => t.parse::<f64>().ok(),
            Self::Json(v) => v.as_f64(),
        }
        .filter(|x| x.is_finite())
    }

    /// Digits after the decimal point, as written.
    fn decimals(&self) -> usize {
        let text = match self {
            Self::Text(t) => t.clone(),
            Self::Json(v) => v.to_string(),
        };
        text.split_once('.')
            .map_or(0, |(_, fraction)| fraction.trim_end_matches('0').len())
    }

    fn count(&self) -> Option<u64> {
        match self {
            Self::Text(t) => t.parse().ok(),
            Self::Json(v) => v.as_u64(),
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Self::Text(t) => Some(t.clone()),
            Self::Json(serde_json::Value::String(s)) => Some(s.trim().to_owned()),
            Self::Json(serde_json::Value::Number(n)) => Some(n.to_string()),
            Self::Json(_) => None,
        }
    }
}

fn read_row(at: &str, sep: &str, cells: &BTreeMap<&str, Cell>) -> Result<Row, Vec<Problem>> {
    let field = |c: &str| format!("{at}{sep}{c}");
    let mut problems = Vec::new();
    let institution = match (cells.get("institution_id"), cells.get("tax_id")) {
        (Some(id), _) => match id.text().and_then(|t| t.parse::<Uuid>().ok()) {
            Some(id) => Some(InstitutionKey::Id(id)),
            None => {
                problems.push(problem(
                    &field("institution_id"),
                    "invalid-value",
                    "an institution id (UUID) as the directory shows it",
                ));
                None
            }
        },
        (None, Some(tax)) => match tax
            .text()
            .filter(|t| matches!(t.len(), 10 | 12) && t.bytes().all(|b| b.is_ascii_digit()))
        {
            Some(t) => Some(InstitutionKey::TaxId(t)),
            None => {
                problems.push(problem(
                    &field("tax_id"),
                    "invalid-value",
                    "an ИНН of 10 or 12 digits",
                ));
                None
            }
        },
        (None, None) => {
            problems.push(problem(
                &field("institution_id"),
                "required",
                "name the institution by institution_id or tax_id",
            ));
            None
        }
    };
    let year = match cells.get("year").map(|c| c.count()) {
        Some(count) => {
            let year = count
                .and_then(|y| i32::try_from(y).ok())
                .filter(|y| super::YEARS.contains(y));
            if year.is_none() {
                problems.push(problem(
                    &field("year"),
                    "invalid-year",
                    format!(
                        "a year between {} and {}",
                        super::YEARS.start(),
                        super::YEARS.end()
                    ),
                ));
            }
            year
        }
        None => {
            problems.push(problem(&field("year"), "required", "the rating year"));
            None
        }
    };
    let mut values = Imported::default();
    let mut score = |name: &str| -> Option<f64> {
        let cell = cells.get(name)?;
        match cell.number() {
            Some(_) if cell.decimals() > 2 => {
                problems.push(problem(
                    &field(name),
                    "too-precise",
                    "scores are published with two decimals; round the value",
                ));
                None
            }
            Some(x) if (0.0..=100.0).contains(&x) => Some(x),
            Some(x) => {
                problems.push(problem(
                    &field(name),
                    "out-of-range",
                    format!("{x} is outside 0..100"),
                ));
                None
            }
            None => {
                problems.push(problem(
                    &field(name),
                    "invalid-number",
                    "a number such as 85.5",
                ));
                None
            }
        }
    };
    values.k1 = score("k1");
    values.k2 = score("k2");
    values.k4 = score("k4");
    values.k5 = score("k5");
    for id in INDICATORS {
        if let Some(v) = score(id) {
            values.indicators.insert(id.to_owned(), v);
        }
    }
    let mut count = |name: &str| -> Option<Option<u64>> {
        let cell = cells.get(name)?;
        let parsed = cell.count();
        if parsed.is_none() {
            problems.push(problem(
                &field(name),
                "invalid-count",
                "a whole number of people, 0 or more",
            ));
        }
        Some(parsed)
    };
    match (count(RESPONDENTS), count(SATISFIED)) {
        (Some(Some(respondents)), Some(Some(satisfied))) if satisfied > respondents => problems
            .push(problem(
                &field(SATISFIED),
                "out-of-range",
                format!("{satisfied} satisfied out of {respondents} respondents"),
            )),
        (Some(Some(respondents)), Some(Some(satisfied))) => {
            values.survey = Some(Survey {
                disabled_respondents: respondents,
                disabled_satisfied: satisfied,
            });
        }
        (Some(_), None) => problems.push(problem(
            &field(SATISFIED),
            "required",
            "give both survey counts",
        )),
        (None, Some(_)) => problems.push(problem(
            &field(RESPONDENTS),
            "required",
            "give both survey counts",
        )),
        _ => {}
    }
    if problems.is_empty() && values == Imported::default() {
        problems.push(problem(at, "empty-row", "the row has no values to import"));
    }
    match (institution, year) {
        (Some(institution), Some(year)) if problems.is_empty() => Ok(Row {
            location: at.to_owned(),
            institution,
            year,
            values,
        }),
        _ => Err(problems),
    }
}

fn problem(field: &str, code: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        field: field.to_owned(),
        code,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0193a0c0-0000-7000-8000-000000000001";

    #[test]
    fn a_semicolon_csv_with_decimal_commas_reads() {
        let csv = format!(
            "institution_id;year;k1;k2;k4;k5;disabled_respondents;disabled_satisfied\n\
             {ID};2026;85,5;90;95;80;10;7\n"
        );
        let parsed = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(parsed.encoding, "utf-8");
        let row = &parsed.rows[0];
        assert_eq!(row.year, 2026);
        assert_eq!(row.values.k1, Some(85.5));
        assert_eq!(
            row.values.survey,
            Some(Survey {
                disabled_respondents: 10,
                disabled_satisfied: 7
            })
        );
    }

    #[test]
    fn windows_1251_is_recognised() {
        let text = "tax_id;institution_name;year;k1\n4826000000;Библиотека;2026;70\n";
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
        let parsed = parse_csv(&bytes).unwrap();
        assert_eq!(parsed.encoding, "windows-1251");
        assert_eq!(
            parsed.rows[0].institution,
            InstitutionKey::TaxId("4826000000".into())
        );
    }

    #[test]
    fn every_bad_row_and_column_is_named() {
        let csv = format!(
            "institution_id,year,k1,k2,disabled_respondents,disabled_satisfied\n\
             {ID},2026,101,abc,5,6\n\
             not-a-uuid,1999,50,50,,\n\
             {ID},2026,50,50,1,1\n"
        );
        let problems = parse_csv(csv.as_bytes()).unwrap_err();
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.field.as_str(), p.code))
            .collect();
        assert_eq!(
            found,
            vec![
                ("line 2/k1", "out-of-range"),
                ("line 2/k2", "invalid-number"),
                ("line 2/disabled_satisfied", "out-of-range"),
                ("line 3/institution_id", "invalid-value"),
                ("line 3/year", "invalid-year"),
            ]
        );
    }

    #[test]
    fn duplicates_and_unknown_columns_are_refused() {
        let csv = format!("institution_id,year,k3\n{ID},2026,50\n");
        let problems = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(problems[0].field, "line 1/k3");
        assert_eq!(problems[0].code, "unknown-column");
        let csv = format!("institution_id,year,k1\n{ID},2026,50\n{ID},2026,60\n");
        let problems = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(problems[0].field, "line 3");
        assert_eq!(problems[0].code, "duplicate-row");
        assert!(problems[0].message.contains("line 2"));
    }

    #[test]
    fn json_rows_read_with_indicators() {
        let json = format!(
            r#"{{"rows": [{{"institution_id": "{ID}", "year": 2026, "indicators": {{"1.1": 80, "1.2": 70.5}}, "k5": 90}},
                          {{"institution_id": "{ID}", "year": 2026, "k9": 1}}]}}"#
        );
        let problems = parse_json(json.as_bytes()).unwrap_err();
        assert_eq!(problems[0].field, "rows[1].k9");
        let json = format!(
            r#"{{"rows": [{{"institution_id": "{ID}", "year": 2026, "indicators": {{"1.1": 80, "1.2": 70.5}}, "k5": 90}}]}}"#
        );
        let parsed = parse_json(json.as_bytes()).unwrap();
        assert_eq!(parsed.rows[0].values.indicators["1.2"], 70.5);
        assert_eq!(parsed.rows[0].values.k5, Some(90.0));
    }

    #[test]
    fn line_numbers_count_blank_lines_and_values_keep_two_decimals() {
        let csv = format!("\n\ninstitution_id;year;k1\n\n{ID};2026;85,555\n");
        let problems = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "line 5/k1");
        assert_eq!(problems[0].code, "too-precise");
        let json = format!(
            r#"{{"rows": [{{"institution_id": "{ID}", "year": 2026, "indicators": {{"year": 1999}}}}]}}"#
        );
        let problems = parse_json(json.as_bytes()).unwrap_err();
        assert_eq!(problems[0].field, "rows[0].indicators.year");
        assert_eq!(problems[0].code, "unknown-indicator");
    }

    #[test]
    fn binary_files_are_not_mistaken_for_windows_1251() {
        let utf16: Vec<u8> = "year,k1\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let problems = parse_csv(&utf16).unwrap_err();
        assert_eq!(problems[0].code, "unsupported-encoding");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for bytes in [
            &b""[..],
            b"\xff\xfe\x00",
            b"year\n\"unterminated",
            b";;;\n;;;",
        ] {
            let _ = parse_csv(bytes);
            let _ = parse_json(bytes);
        }
    }
}
