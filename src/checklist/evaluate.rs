//! Evaluation of an answer set: every rule's outcome with the values that decided it,
//! reviewer overrides, completeness, and the methodology's scores and passport.
//! Results borrow texts from the catalog and answers, so scoring copies no messages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value as Json;

use super::ENGINE_VERSION;
use super::answers::{AnswerSet, resolve};
use super::catalog::Catalog;
use super::error::EvalError;
use super::expr::{Env, Value};
use super::methodology::{Methodology, MethodologyKind, NokScore, PassportResult, PointsScore};
use super::model::{Item, Rule, RuleTest};
use super::rendered::{JsonObject, Raw, Rendered};
use super::schema::Norm;
use super::text::Localized;
use super::types::{Category, Outcome, PhotoPolicy, Severity, Verdict, Work, Zone};

/// A reviewer's decision on one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The outcome the reviewer sets.
    pub verdict: Verdict,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// Reviewer overrides keyed by rule key `checklist.rule`.
pub type Overrides = BTreeMap<String, Override>;

/// Identity of a checklist or methodology version used for a result.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VersionRef<'a> {
    /// Id.
    pub id: &'a str,
    /// Semantic version.
    pub version: &'a str,
    /// SHA-256 of the source file.
    pub sha256: &'a str,
}

/// The outcome of one rule, with what decided it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleResult<'a> {
    /// `checklist.rule`.
    pub rule: &'a str,
    /// Its zone.
    pub zone: Zone,
    /// Severity of a failure.
    pub severity: Severity,
    /// Categories a failure affects.
    pub affects: Raw<'a, Vec<Category>>,
    /// The norm.
    pub norm: Raw<'a, Norm>,
    /// The outcome used in all scoring: the reviewer's verdict when overridden.
    pub outcome: Outcome,
    /// What the engine decided on its own.
    pub engine_outcome: Outcome,
    /// The reviewer's override, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Override>,
    /// The message for `outcome`.
    pub message: Raw<'a, Localized>,
    /// Recommended work, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work: Option<Work>,
    /// The items the rule reads and their answers as given (`null` when unanswered).
    pub values: Values<'a>,
    /// The rule the result was made for, whose results are rendered up to their values (see
    /// [`RuleResult::write_json`]).
    #[serde(skip)]
    made_for: MadeFor<'a>,
}

/// The rule a result was made for; `Debug` does not show it.
#[derive(Clone, Copy)]
struct MadeFor<'a>(Option<&'a Rule>);

impl fmt::Debug for MadeFor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MadeFor(..)")
    }
}

impl RuleResult<'_> {
    /// Writes the JSON serde_json writes for the result, most of it copied as rendered the
    /// first time the rule was evaluated: everything but the values depends only on the rule
    /// and its outcome, unless a reviewer's verdict changed it (then it is written field by
    /// field, as before).
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let Some(head) = self.head() else {
            return serde_json::to_writer(out, self);
        };
        out.extend_from_slice(head.as_bytes());
        self.values.write_json(out)?;
        out.push(b'}');
        Ok(())
    }

    /// The rendered head of this result: only if every field it covers is what [`evaluate`]
    /// sets for the rule and the outcome without a reviewer's verdict (the fields are public,
    /// so a holder may have changed them).
    fn head(&self) -> Option<&str> {
        // Every field named, so that a new one cannot be left out of the check.
        let RuleResult {
            rule: key,
            zone,
            severity,
            affects,
            norm,
            outcome,
            engine_outcome,
            review,
            message: text,
            work,
            values: _,
            made_for,
        } = self;
        let rule = made_for.0?;
        let as_made = review.is_none()
            && outcome == engine_outcome
            && std::ptr::eq(*key, rule.key.as_str())
            && *zone == rule.zone
            && *severity == rule.severity
            && affects.is(&rule.affects.raw())
            && norm.is(&rule.norm.raw())
            && text.is(&message(rule, *outcome))
            && *work == (*outcome == Outcome::Fail).then_some(rule.work);
        if !as_made {
            return None;
        }
        rule.heads.0.get()?.get(outcome.index())?.as_deref()
    }
}

/// A rule's result as JSON up to its values (`{"rule":…,"values":`), for each outcome (in the
/// order of [`Outcome::ALL`]) when no
/// reviewer's verdict is involved: made the first time the rule is evaluated, with the
/// derived serialisation, so the bytes are the same. `None` where that did not render as
/// expected (it always does: the fields are strings and pre-rendered texts).
#[derive(Clone, Default)]
pub(crate) struct ResultHeads(OnceLock<[Option<Box<str>>; Outcome::ALL.len()]>);

impl fmt::Debug for ResultHeads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResultHeads(..)")
    }
}

impl ResultHeads {
    /// Renders `rule`'s heads, unless they already are.
    fn render(catalog: &Catalog, rule: &Rule) {
        rule.heads.0.get_or_init(|| {
            Outcome::ALL.map(|outcome| {
                let values = Values {
                    catalog,
                    slots: &[],
                    raw: Arc::from([]),
                };
                let mut result = result_of(rule, outcome, outcome, None, values);
                result.made_for = MadeFor(None);
                let json = serde_json::to_string(&result).ok()?;
                json.strip_suffix("{}}").map(Box::from)
            })
        });
    }
}

/// Items and raw answers, serialised as a JSON object in reading order.
///
/// A view: the items are a slice of the catalog, and the answers one vector shared by every
/// result of an evaluation, so a result costs no allocation of its own (an evaluation has a
/// result per rule, each with its values, and is made for every answer to a write).
#[derive(Clone)]
pub struct Values<'a> {
    catalog: &'a Catalog,
    slots: &'a [u32],
    /// The evaluation's raw answers, by slot.
    raw: Arc<[Option<&'a Json>]>,
}

impl<'a> Values<'a> {
    /// Each item (`checklist.item`) with its answer as given, `None` when unanswered.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a Json>)> + '_ {
        self.slots.iter().filter_map(|s| {
            Some((
                self.catalog.item_at(*s)?.key.as_str(),
                self.raw.get(*s as usize).copied().flatten(),
            ))
        })
    }
}

impl Values<'_> {
    /// Writes the JSON serde_json writes for the values. Item keys are identifiers joined by a
    /// dot (the loader refuses others), written as they are; one that would need escaping
    /// goes through serde_json.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        for (n, (key, value)) in self.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            if key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                out.push(b'"');
                out.extend_from_slice(key.as_bytes());
                out.push(b'"');
            } else {
                serde_json::to_writer(&mut *out, key)?;
            }
            out.push(b':');
            serde_json::to_writer(&mut *out, &value)?;
        }
        out.push(b'}');
        Ok(())
    }
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rules passed.
    pub pass: usize,
    /// Rules failed.
    pub fail: usize,
    /// Rules not applicable.
    pub not_applicable: usize,
    /// Rules lacking answers.
    pub incomplete: usize,
    /// Rules awaiting a reviewer.
    pub needs_review: usize,
}

/// Something still needed from the volunteer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// `checklist.item`.
    pub item: String,
    /// `answer-required` or `photo-required`.
    pub code: &'static str,
}

/// Answers and photos an audit still needs, given its answers so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Completeness<'a> {
    /// Required items that apply and have no answer.
    pub missing_answers: Vec<&'a str>,
    /// Items whose photo is required given the answers (whether or not it is attached:
    /// photos are not part of the answers).
    pub photos_required: Vec<&'a str>,
}

/// The full result of scoring an answer set.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation<'a> {
    /// Version of this engine.
    pub engine_version: &'static str,
    /// The scoring methodology used.
    pub methodology: VersionRef<'a>,
    /// The passport methodology used, if the scoring methodology names one.
    pub passport_methodology: Option<VersionRef<'a>>,
    /// Every checklist version used.
    pub checklists: Vec<VersionRef<'a>>,
    /// True when nothing is missing, no rule is incomplete or awaiting review, and every
    /// score is computable.
    pub complete: bool,
    /// Outcome counts.
    pub summary: Summary,
    /// Missing answers and required photos.
    pub completeness: Completeness<'a>,
    /// Order 627 statuses.
    pub passport: Option<PassportResult>,
    /// Order 344н criterion 3, for a `nok` methodology.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nok: Option<NokScore<'a>>,
    /// Points, for a `points` methodology.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<PointsScore<'a>>,
    /// Every rule's outcome, in catalog order.
    pub rules: Vec<RuleResult<'a>>,
}

impl Evaluation<'_> {
    /// Writes the JSON serde_json writes for the evaluation (`serde_json::to_writer`), in
    /// about a third of the time: an audit's answer carries it on every write, and most of it
    /// is the rules' results, whose fixed parts are copied as rendered once per rule (see
    /// [`RuleResult`]). The derived serialisation stays the reference: tests compare the two.
    ///
    /// # Errors
    /// A value does not serialise (serde_json fails only on maps with non-string keys and on
    /// custom errors, which nothing here has).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // Every field named, so that a new one fails to compile until it is written here.
        let Evaluation {
            engine_version,
            methodology,
            passport_methodology,
            checklists,
            complete,
            summary,
            completeness,
            passport,
            nok,
            points,
            rules,
        } = self;
        let mut object = JsonObject::new(out);
        object.field("engine_version", engine_version)?;
        object.field("methodology", methodology)?;
        object.field("passport_methodology", passport_methodology)?;
        object.field("checklists", checklists)?;
        object.field("complete", complete)?;
        object.field("summary", summary)?;
        object.field("completeness", completeness)?;
        object.field("passport", passport)?;
        if let Some(nok) = nok {
            object.field("nok", nok)?;
        }
        if let Some(points) = points {
            object.field("points", points)?;
        }
        let out = object.key("rules");
        out.push(b'[');
        for (n, rule) in rules.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            rule.write_json(out)?;
        }
        out.push(b']');
        object.end();
        Ok(())
    }
}

static NOT_APPLICABLE: LazyLock<Rendered<Localized>> = LazyLock::new(|| {
    Rendered::new(Localized {
        ru: "Не применяется: условие применения правила не выполнено.".to_owned(),
        en: "Not applicable: the rule's condition does not hold.".to_owned(),
    })
});
static INCOMPLETE: LazyLock<Rendered<Localized>> = LazyLock::new(|| {
    Rendered::new(Localized {
        ru: "Недостаточно данных: нет ответа на вопросы, от которых зависит правило.".to_owned(),
        en: "Incomplete: answers the rule needs are missing.".to_owned(),
    })
});

/// State shared by rule evaluation and methodology scoring.
pub(crate) struct Resolved<'a> {
    pub values: Vec<Value>,
    /// Raw answers by slot, shared with the results' [`Values`].
    pub raw: Arc<[Option<&'a Json>]>,
    /// Final outcome per rule index.
    pub outcomes: Vec<Outcome>,
    /// Per slot: whether the item applies (its `when` holds), `None` when unknown.
    pub applies: Vec<Option<bool>>,
}

impl<'a> Resolved<'a> {
    pub(crate) fn env(&self) -> Env<'_> {
        Env {
            slots: &self.values,
            rules: &self.outcomes,
        }
    }

    pub(crate) fn values_of(&self, catalog: &'a Catalog, slots: &'a [u32]) -> Values<'a> {
        Values {
            catalog,
            slots,
            raw: Arc::clone(&self.raw),
        }
    }
}

/// Scores `answers` with methodology `methodology` (or the answers' own, or the catalog's
/// default), applying reviewer `overrides`.
///
/// # Errors
/// [`EvalError::UnknownMethodology`] / [`EvalError::NotAScoringMethodology`] for a bad
/// methodology id, [`EvalError::InvalidAnswers`] listing every answer that does not fit its
/// item, [`EvalError::UnknownRule`] for an override of a rule that does not exist.
pub fn evaluate<'a>(
    catalog: &'a Catalog,
    methodology: Option<&str>,
    answers: &'a AnswerSet,
    overrides: &Overrides,
) -> Result<Evaluation<'a>, EvalError> {
    let m = select_methodology(catalog, methodology.or(answers.methodology.as_deref()))?;
    let (resolved, engine) = outcomes(catalog, answers, overrides)?;

    let mut summary = Summary::default();
    let mut rules = Vec::with_capacity(catalog.rule_count());
    for (index, rule) in (0u32..).zip(
        catalog
            .rules
            .iter()
            .filter_map(|(c, r)| catalog.checklists.get(*c as usize)?.rules.get(*r as usize)),
    ) {
        let outcome = resolved.outcomes[index as usize];
        match outcome {
            Outcome::Pass => summary.pass += 1,
            Outcome::Fail => summary.fail += 1,
            Outcome::NotApplicable => summary.not_applicable += 1,
            Outcome::Incomplete => summary.incomplete += 1,
            Outcome::NeedsReview => summary.needs_review += 1,
        }
        ResultHeads::render(catalog, rule);
        rules.push(result_of(
            rule,
            outcome,
            engine[index as usize],
            overrides.get(&rule.key).cloned(),
            resolved.values_of(catalog, &rule.reads),
        ));
    }

    let completeness = completeness(catalog, &resolved);
    let passport_m = m.passport.as_deref().and_then(|id| catalog.methodology(id));
    let passport = passport_m.and_then(|pm| match &pm.kind {
        MethodologyKind::Passport(p) => {
            Some(super::methodology::passport::compute(catalog, p, &resolved))
        }
        _ => None,
    });
    let (nok, points) = match &m.kind {
        MethodologyKind::Nok(n) => (
            Some(super::methodology::nok::compute(
                catalog,
                n,
                &resolved,
                answers.survey,
            )),
            None,
        ),
        MethodologyKind::Points(p) => (
            None,
            Some(super::methodology::points::compute(catalog, p, &resolved)),
        ),
        MethodologyKind::Passport(_) => (None, None),
    };
    let scores_known = nok.as_ref().is_none_or(|n| n.k3.is_some())
        && points.as_ref().is_none_or(|p| p.total.is_some())
        && passport.as_ref().is_none_or(|p| p.site.is_some());
    let complete = completeness.missing_answers.is_empty()
        && summary.incomplete == 0
        && summary.needs_review == 0
        && scores_known;

    Ok(Evaluation {
        engine_version: ENGINE_VERSION,
        methodology: version_of(m),
        passport_methodology: passport_m.map(version_of),
        checklists: catalog
            .checklists
            .iter()
            .map(|c| VersionRef {
                id: &c.id,
                version: &c.version,
                sha256: &c.sha256,
            })
            .collect(),
        complete,
        summary,
        completeness,
        passport,
        nok,
        points,
        rules,
    })
}

/// Everything an audit still lacks before it can be submitted: required answers
/// (`answer-required`) and required photos not in `photos` (`photo-required`). `photos`
/// holds the `checklist.item` keys that have at least one photo.
///
/// # Errors
/// [`EvalError::InvalidAnswers`] when answers do not fit their items.
pub fn missing_for_submission(
    catalog: &Catalog,
    answers: &AnswerSet,
    photos: &BTreeSet<String>,
) -> Result<Vec<Missing>, EvalError> {
    let (resolved, _) = outcomes(catalog, answers, &Overrides::new())?;
    let c = completeness(catalog, &resolved);
    let mut out: Vec<Missing> = c
        .missing_answers
        .iter()
        .map(|k| Missing {
            item: (*k).to_owned(),
            code: "answer-required",
        })
        .collect();
    out.extend(
        c.photos_required
            .iter()
            .filter(|k| !photos.contains(**k))
            .map(|k| Missing {
                item: (*k).to_owned(),
                code: "photo-required",
            }),
    );
    Ok(out)
}

fn version_of(m: &Methodology) -> VersionRef<'_> {
    VersionRef {
        id: &m.id,
        version: &m.version,
        sha256: &m.sha256,
    }
}

fn select_methodology<'a>(
    catalog: &'a Catalog,
    id: Option<&str>,
) -> Result<&'a Methodology, EvalError> {
    let Some(id) = id else {
        return Ok(catalog.default_methodology());
    };
    let m = catalog
        .methodology(id)
        .ok_or_else(|| EvalError::UnknownMethodology(id.to_owned()))?;
    if Catalog::is_scoring(m) {
        Ok(m)
    } else {
        Err(EvalError::NotAScoringMethodology(id.to_owned()))
    }
}

/// Resolves answers and computes every rule's engine outcome and final outcome.
fn outcomes<'a>(
    catalog: &Catalog,
    answers: &'a AnswerSet,
    overrides: &Overrides,
) -> Result<(Resolved<'a>, Vec<Outcome>), EvalError> {
    if let Some(unknown) = overrides
        .keys()
        .find(|k| !catalog.rule_index.contains_key(k.as_str()))
    {
        return Err(EvalError::UnknownRule(unknown.clone()));
    }
    let (values, raw) = resolve(catalog, answers).map_err(EvalError::InvalidAnswers)?;
    let applies = applicability(catalog, &values);
    let mut resolved = Resolved {
        values,
        raw: raw.into(),
        outcomes: Vec::with_capacity(catalog.rule_count()),
        applies,
    };
    let mut engine = Vec::with_capacity(catalog.rule_count());
    for (c, r) in &catalog.rules {
        let Some(rule) = catalog
            .checklists
            .get(*c as usize)
            .and_then(|cl| cl.rules.get(*r as usize))
        else {
            continue;
        };
        let env = Env {
            slots: &resolved.values,
            rules: &[],
        };
        // A rule reading an item that does not apply to this site (the ramp slope where
        // there is no ramp) does not apply either.
        let reads_inapplicable = rule
            .reads
            .iter()
            .any(|s| resolved.applies.get(*s as usize) == Some(&Some(false)));
        let own = if reads_inapplicable {
            Outcome::NotApplicable
        } else {
            engine_outcome(rule, &env)
        };
        engine.push(own);
        let fin = if overrides.is_empty() {
            own
        } else {
            overrides.get(&rule.key).map_or(own, |o| o.verdict.into())
        };
        resolved.outcomes.push(fin);
    }
    Ok((resolved, engine))
}

/// Whether each item applies: its `when` holds and every item the `when` reads applies.
/// `when` conditions may read items declared later, so this iterates to a fixed point;
/// each pass can only turn unknown into known, so it ends within a few passes.
fn applicability(catalog: &Catalog, values: &[Value]) -> Vec<Option<bool>> {
    let items: Vec<&Item> = catalog
        .checklists
        .iter()
        .flat_map(|c| c.items.iter())
        .collect();
    let mut applies: Vec<Option<bool>> = items
        .iter()
        .map(|i| if i.when.is_none() { Some(true) } else { None })
        .collect();
    let env = Env {
        slots: values,
        rules: &[],
    };
    for _ in 0..items.len().max(1) {
        let mut changed = false;
        for item in &items {
            let slot = item.slot as usize;
            let Some(when) = &item.when else { continue };
            if applies.get(slot).copied().flatten().is_some() {
                continue;
            }
            let upstream_out = when
                .slots()
                .iter()
                .any(|s| applies.get(*s as usize) == Some(&Some(false)));
            let now = if upstream_out {
                Some(false)
            } else {
                when.eval(&env)
            };
            if now.is_some() {
                applies[slot] = now;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    applies
}

fn engine_outcome(rule: &Rule, env: &Env<'_>) -> Outcome {
    match rule.when.as_ref().map(|w| w.eval(env)) {
        Some(Some(false)) => return Outcome::NotApplicable,
        Some(None) => return Outcome::Incomplete,
        _ => {}
    }
    match &rule.test {
        RuleTest::Check(check) => match check.eval(env) {
            Some(true) => Outcome::Pass,
            Some(false) => Outcome::Fail,
            None => Outcome::Incomplete,
        },
        RuleTest::Review(_) => Outcome::NeedsReview,
    }
}

/// A rule's result.
fn result_of<'a>(
    rule: &'a Rule,
    outcome: Outcome,
    engine_outcome: Outcome,
    review: Option<Override>,
    values: Values<'a>,
) -> RuleResult<'a> {
    RuleResult {
        rule: &rule.key,
        zone: rule.zone,
        severity: rule.severity,
        affects: rule.affects.raw(),
        norm: rule.norm.raw(),
        outcome,
        engine_outcome,
        review,
        message: message(rule, outcome),
        work: (outcome == Outcome::Fail).then_some(rule.work),
        values,
        made_for: MadeFor(Some(rule)),
    }
}

fn message(rule: &Rule, outcome: Outcome) -> Raw<'_, Localized> {
    match outcome {
        Outcome::Pass => rule.pass.raw(),
        Outcome::Fail => rule.fail.raw(),
        Outcome::NotApplicable => NOT_APPLICABLE.raw(),
        Outcome::Incomplete => INCOMPLETE.raw(),
        Outcome::NeedsReview => match &rule.test {
            RuleTest::Review(text) => text.raw(),
            RuleTest::Check(_) => INCOMPLETE.raw(),
        },
    }
}

fn completeness<'a>(catalog: &'a Catalog, resolved: &Resolved<'_>) -> Completeness<'a> {
    let mut out = Completeness::default();
    for item in catalog.checklists.iter().flat_map(|c| c.items.iter()) {
        // An item whose applicability is unknown depends on a missing answer, which is
        // itself reported; the item is asked once that answer exists.
        if resolved.applies.get(item.slot as usize) != Some(&Some(true)) {
            continue;
        }
        let value = resolved
            .values
            .get(item.slot as usize)
            .copied()
            .unwrap_or_default();
        if item.required
            && value == Value::Unknown
            && !matches!(item.kind, super::model::ItemKind::Photo)
        {
            out.missing_answers.push(&item.key);
        }
        if photo_required(item, value, &resolved.outcomes) {
            out.photos_required.push(&item.key);
        }
    }
    out
}

fn photo_required(item: &Item, value: Value, outcomes: &[Outcome]) -> bool {
    match item.photo {
        PhotoPolicy::Never | PhotoPolicy::Optional => false,
        PhotoPolicy::Required => true,
        PhotoPolicy::RequiredIfTrue => value == Value::Bool(true),
        PhotoPolicy::RequiredIfFail => item
            .checked_by
            .iter()
            .any(|r| outcomes.get(*r as usize) == Some(&Outcome::Fail)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every result `evaluate` makes without a reviewer's verdict is written from its rule's
    /// rendered head (that it is the same JSON is `tests/engine.rs`'s to show); with a
    /// verdict, field by field.
    #[test]
    fn results_without_a_verdict_are_written_from_their_rendered_heads() {
        let catalog = crate::checklist::shipped::catalog();
        let answers = crate::checklist::shipped::example("typical-older-building");
        let verdict = Override {
            verdict: super::super::types::Verdict::Pass,
            comment: String::new(),
        };
        let overrides: Overrides = [("sanitary.accessible_toilet".to_owned(), verdict)].into();
        let e = evaluate(&catalog, None, &answers, &overrides).unwrap();
        assert!(e.rules.len() > 50);
        for result in &e.rules {
            let reviewed = result.rule == "sanitary.accessible_toilet";
            assert_eq!(result.head().is_none(), reviewed, "{}", result.rule);
            if let Some(head) = result.head() {
                assert!(head.ends_with("\"values\":"), "{head}");
            }
        }
    }
}
