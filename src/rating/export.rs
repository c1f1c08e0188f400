//! A rating as CSV lines and as an XLSX workbook, the forms ministries publish.
//! CSV is produced line by line so a large rating streams without a second copy
//! in memory.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::{Figures, InstitutionScore, Summary};

/// The columns of a rating table: criteria for order 344н, points otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Criteria,
    Points,
}

fn headers(layout: Layout) -> Vec<&'static str> {
    match layout {
        Layout::Criteria => vec![
            "rank",
            "institution_id",
            "name",
            "score",
            "K1",
            "K2",
            "K3",
            "K4",
            "K5",
            "P3.1",
            "P3.2",
            "P3.3",
            "complete",
            "missing",
        ],
        Layout::Points => vec![
            "rank",
            "institution_id",
            "name",
            "points",
            "maximum",
            "complete",
            "missing",
        ],
    }
}

/// A cell of the table.
enum Value {
    Text(String),
    Number(Option<f64>),
}

fn cells(layout: Layout, s: &InstitutionScore) -> Vec<Value> {
    let mut row = vec![
        Value::Number(s.rank.map(f64::from)),
        Value::Text(s.institution_id.to_string()),
        Value::Text(s.name.clone()),
        Value::Number(s.score),
    ];
    match layout {
        Layout::Criteria => {
            for k in ["K1", "K2", "K3", "K4", "K5"] {
                row.push(Value::Number(s.criteria.and_then(|c| c.get(k))));
            }
            let k3 = s.k3.as_ref();
            row.push(Value::Number(k3.and_then(|d| d.p3_1)));
            row.push(Value::Number(k3.and_then(|d| d.p3_2)));
            row.push(Value::Number(k3.and_then(|d| d.p3_3)));
        }
        Layout::Points => {
            row.push(Value::Number(s.points.as_ref().map(|p| p.maximum)));
        }
    }
    row.push(Value::Text(
        if s.complete { "yes" } else { "no" }.to_owned(),
    ));
    row.push(Value::Text(s.missing.join("; ")));
    row
}

/// The CSV header line, with a byte-order mark so spreadsheet programs read the
/// Cyrillic names as UTF-8.
#[must_use]
pub fn csv_header(layout: Layout) -> String {
    format!("\u{feff}{}\r\n", headers(layout).join(","))
}

/// One institution as a CSV line.
#[must_use]
pub fn csv_line(layout: Layout, s: &InstitutionScore) -> String {
    let fields: Vec<String> = cells(layout, s)
        .into_iter()
        .map(|v| match v {
            Value::Text(t) => quote(&t),
            Value::Number(Some(x)) => x.to_string(),
            Value::Number(None) => String::new(),
        })
        .collect();
    format!("{}\r\n", fields.join(","))
}

/// Quotes a CSV field when it needs it (RFC 4180), and neutralises a leading
/// `=`, `+`, `-` or `@` so a spreadsheet never runs a name as a formula.
#[must_use]
pub fn quote(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// The rating as an XLSX workbook: the ranked table, then the summary figures.
///
/// # Errors
/// The workbook cannot be assembled (not expected for valid numbers and texts).
pub fn xlsx(
    title: &str,
    layout: Layout,
    scores: &[InstitutionScore],
    summary: &Summary,
) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let decimal = Format::new().set_num_format("0.00");
    let sheet = workbook.add_worksheet();
    sheet.set_name("Рейтинг")?;
    sheet.write_string_with_format(0, 0, title, &bold)?;
    for (col, h) in (0u16..).zip(headers(layout)) {
        sheet.write_string_with_format(2, col, h, &bold)?;
    }
    for (row, s) in (3u32..).zip(scores) {
        for (col, v) in (0u16..).zip(cells(layout, s)) {
            match v {
                Value::Text(t) => {
                    sheet.write_string(row, col, t)?;
                }
                Value::Number(Some(x)) => {
                    sheet.write_number_with_format(row, col, x, &decimal)?;
                }
                Value::Number(None) => {}
            }
        }
    }
    sheet.set_column_width(1, 38)?;
    sheet.set_column_width(2, 48)?;

    let totals = workbook.add_worksheet();
    totals.set_name("Итоги")?;
    for (col, h) in (0u16..).zip(["figure", "count", "max", "min", "mean"]) {
        totals.write_string_with_format(0, col, h, &bold)?;
    }
    let mut row = 1u32;
    let mut put = |name: &str, f: &Figures| -> Result<(), XlsxError> {
        totals.write_string(row, 0, name)?;
        totals.write_number(row, 1, f.count as f64)?;
        for (col, x) in [(2u16, f.max), (3, f.min), (4, f.mean)] {
            if let Some(x) = x {
                totals.write_number_with_format(row, col, x, &decimal)?;
            }
        }
        row += 1;
        Ok(())
    };
    for (id, f) in &summary.criteria {
        put(id, f)?;
    }
    put("score", &summary.score)?;
    totals.write_string(row, 0, "gap first to last")?;
    if let Some(gap) = summary.gap {
        totals.write_number_with_format(row, 2, gap, &decimal)?;
    }
    totals.write_string(row + 1, 0, "institutions")?;
    totals.write_number(row + 1, 1, summary.institutions as f64)?;
    totals.write_string(row + 2, 0, "ranked")?;
    totals.write_number(row + 2, 1, summary.ranked as f64)?;
    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(quote("Школа № 5"), "Школа № 5");
        assert_eq!(quote("ГБУ \"ЦСО\", Липецк"), "\"ГБУ \"\"ЦСО\"\", Липецк\"");
        assert_eq!(quote("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
