//! Plain-text renderings for people at a terminal: an evaluation and a checklist.
//! Russian first, as in the passport; English where a reader needs it.

use std::fmt::Write as _;

use super::evaluate::Evaluation;
use super::methodology::{ConditionResult, Tri};
use super::model::{Checklist, ItemKind, RuleTest};
use super::types::{Category, Outcome};

/// Renders an evaluation as text.
#[must_use]
pub fn render_evaluation(e: &Evaluation<'_>) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail; results of write! are ignored throughout.
    let _ = writeln!(
        s,
        "Methodology {} {} · engine {}",
        e.methodology.id, e.methodology.version, e.engine_version
    );
    let _ = writeln!(
        s,
        "Rules: {} pass, {} fail, {} not applicable, {} incomplete, {} needs review · {}",
        e.summary.pass,
        e.summary.fail,
        e.summary.not_applicable,
        e.summary.incomplete,
        e.summary.needs_review,
        if e.complete { "complete" } else { "INCOMPLETE" }
    );
    if let Some(n) = &e.nok {
        let _ = writeln!(s, "\nOrder 344н, criterion 3");
        conditions(&mut s, &n.conditions_3_1);
        conditions(&mut s, &n.conditions_3_2);
        let _ = writeln!(
            s,
            "  P3.1 = {}   P3.2 = {}   P3.3 = {}   K3 = {}",
            num(n.p3_1),
            num(n.p3_2),
            num(n.p3_3),
            num(n.k3)
        );
        for note in &n.notes {
            let _ = writeln!(s, "  note: {note}");
        }
    }
    if let Some(p) = &e.points {
        let _ = writeln!(s, "\nPoints");
        conditions(&mut s, &p.entries);
        let _ = writeln!(
            s,
            "  total = {} of {} (known: {})",
            num(p.total),
            p.maximum,
            p.known_points
        );
    }
    if let Some(p) = &e.passport {
        let _ = writeln!(
            s,
            "\nPassport (order 627): site {}",
            p.site.as_ref().map_or("unknown", |x| x.code.as_str())
        );
        let _ = writeln!(
            s,
            "  {:<12} {}",
            "zone",
            Category::ALL.map(|c| format!("{:<4}", c.letter())).join("")
        );
        for z in &p.zones {
            let cells: String = Category::ALL
                .iter()
                .map(|c| {
                    format!(
                        "{:<4}",
                        z.statuses
                            .get(c)
                            .copied()
                            .flatten()
                            .map_or("?", |st| st.code())
                    )
                })
                .collect();
            let _ = writeln!(s, "  {:<12} {cells}", z.zone.as_str());
        }
    }
    let problems: Vec<_> = e
        .rules
        .iter()
        .filter(|r| r.outcome != Outcome::Pass && r.outcome != Outcome::NotApplicable)
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(s, "\nFindings");
        for r in problems {
            let _ = writeln!(
                s,
                "  [{}] {} ({}; {} {}): {}",
                r.outcome.as_str(),
                r.rule,
                r.severity.as_str(),
                r.norm.document,
                r.norm.clause,
                r.message.ru
            );
        }
    }
    if !e.completeness.missing_answers.is_empty() {
        let _ = writeln!(
            s,
            "\nMissing answers: {}",
            e.completeness.missing_answers.join(", ")
        );
    }
    s
}

fn conditions(s: &mut String, list: &[ConditionResult<'_>]) {
    for c in list {
        let mark = match c.status {
            Tri::Met => "+",
            Tri::NotMet => "-",
            Tri::Unknown => "?",
        };
        let _ = writeln!(s, "  {mark} {:<7} {:>5} {}", c.id, c.points, c.title.ru);
    }
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "unknown".to_owned(), |v| format!("{v}"))
}

/// Renders a checklist as text.
#[must_use]
pub fn render_checklist(c: &Checklist) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} — {} / {} (zone {})",
        c.id, c.version, c.title.ru, c.title.en, c.zone
    );
    let _ = writeln!(s, "\nItems");
    for i in &c.items {
        let ty = match &i.kind {
            ItemKind::Number { unit, min, max } => format!("number {unit} [{min}, {max}]"),
            ItemKind::Count { min, max } => format!("count [{min}, {max}]"),
            ItemKind::Choice(o) | ItemKind::MultiChoice(o) => {
                format!(
                    "{} {{{}}}",
                    i.kind.name(),
                    o.iter()
                        .map(|o| o.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            k => k.name().to_owned(),
        };
        let _ = writeln!(
            s,
            "  {:<28} {ty}{}",
            i.id,
            if i.required { "" } else { " (optional)" }
        );
        let _ = writeln!(s, "      {}", i.question.ru);
        if let Some(w) = i.when() {
            let _ = writeln!(s, "      when: {w}");
        }
    }
    let _ = writeln!(s, "\nRules");
    for r in &c.rules {
        let test = match &r.test {
            RuleTest::Check(e) => e.source().to_owned(),
            RuleTest::Review(t) => format!("review: {}", t.ru),
        };
        let cats: Vec<&str> = r.affects.iter().map(|c| c.letter()).collect();
        let _ = writeln!(
            s,
            "  {:<28} {} [{}] {} {}",
            r.id,
            r.severity.as_str(),
            cats.join(","),
            r.norm.document,
            r.norm.clause
        );
        if let Some(w) = &r.when {
            let _ = writeln!(s, "      when:  {}", w.source());
        }
        let _ = writeln!(s, "      check: {test}");
    }
    s
}
