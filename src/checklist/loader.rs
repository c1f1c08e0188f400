//! Loading checklist files: parse each file, check ids, types, ranges and options, then
//! compile every `when` and `check` against the items of all checklists, so cross-checklist
//! references resolve. Every problem is collected; nothing stops at the first error.

use std::collections::{HashMap, HashSet};

use serde_saphyr::Spanned;

use super::error::LoadErrors;
use super::evaluate::ResultHeads;
use super::expr::{Expr, ItemInfo, ItemTy, Lookup, Scope};
use super::model::{Checklist, ChoiceOption, Item, ItemKind, Rule, RuleTest};
use super::rendered::Rendered;
use super::schema::{RawChecklist, RawItem, RawItemType, RawRule};
use super::source::Source;
use super::types::{PhotoPolicy, is_identifier, is_semver};

/// Most options a choice item may have: multiple-choice answers are 64-bit sets.
const MAX_OPTIONS: usize = 64;

/// A checklist whose items are known but whose expressions are not compiled yet.
struct Parsed<'s> {
    source: &'s Source,
    raw: RawChecklist,
    items: Vec<Item>,
}

/// The names every expression may reference: checklist id → its items.
pub(crate) struct ItemTable {
    by_checklist: HashMap<String, HashMap<String, (u32, ItemKind)>>,
    option_ids: HashMap<u32, Vec<String>>,
    /// Keys of items and rules defined but rejected, and whether some file did not parse
    /// at all: references to them are not reported again.
    pub(crate) broken: HashSet<String>,
    pub(crate) some_file_unparsed: bool,
}

impl ItemTable {
    pub(crate) fn has_checklist(&self, id: &str) -> bool {
        self.by_checklist.contains_key(id)
    }

    pub(crate) fn lookup(&self, checklist: &str, id: &str) -> Result<ItemInfo<'_>, Lookup> {
        let Some(items) = self.by_checklist.get(checklist) else {
            if self.some_file_unparsed {
                return Err(Lookup::Cascade);
            }
            let mut known: Vec<&str> = self.by_checklist.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(Lookup::Missing(format!(
                "unknown checklist `{checklist}`; known checklists: {}",
                known.join(", ")
            )));
        };
        let Some((slot, kind)) = items.get(id) else {
            if self.broken.contains(&format!("{checklist}.{id}")) {
                return Err(Lookup::Cascade);
            }
            return Err(Lookup::Missing(format!(
                "unknown item `{id}` in checklist `{checklist}`"
            )));
        };
        let options = self.option_ids.get(slot).map_or(&[][..], Vec::as_slice);
        let ty = match kind {
            ItemKind::Boolean => ItemTy::Bool,
            ItemKind::Number { unit, .. } => ItemTy::Number(*unit),
            ItemKind::Count { .. } => ItemTy::Count,
            ItemKind::Choice(_) => ItemTy::Choice(options),
            ItemKind::MultiChoice(_) => ItemTy::Multi(options),
            ItemKind::Text => ItemTy::Text,
            ItemKind::Photo => ItemTy::Photo,
        };
        Ok(ItemInfo {
            slot: *slot,
            ty,
            key: format!("{checklist}.{id}"),
        })
    }
}

struct ChecklistScope<'a> {
    table: &'a ItemTable,
    current: &'a str,
    /// The item whose `when` is compiled: it may not depend on itself.
    own_item: Option<&'a str>,
}

impl Scope for ChecklistScope<'_> {
    fn item(&self, checklist: Option<&str>, id: &str) -> Result<ItemInfo<'_>, Lookup> {
        if checklist.is_none() && self.own_item == Some(id) {
            return Err(Lookup::Missing(format!(
                "the `when` of item `{id}` cannot depend on the item itself"
            )));
        }
        self.table.lookup(checklist.unwrap_or(self.current), id)
    }

    fn rule(&self, _key: &str) -> Result<u32, Lookup> {
        Err(Lookup::Missing(
            "rule outcomes (passed, passed_or_na) can only be used in methodologies".into(),
        ))
    }
}

/// Loads checklists from their sources; returns them with the item table methodologies use.
pub(crate) fn load_checklists(
    sources: &[Source],
    errors: &mut LoadErrors,
) -> (Vec<Checklist>, ItemTable) {
    let mut parsed = Vec::new();
    let mut some_file_unparsed = false;
    let mut broken = HashSet::new();
    let mut seen_ids: HashMap<String, &Source> = HashMap::new();
    let mut next_slot = 0u32;
    for source in sources {
        let raw: RawChecklist = match source.parse() {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                some_file_unparsed = true;
                continue;
            }
        };
        check_header(source, &raw, errors);
        if let Some(first) = seen_ids.get(&raw.id.value) {
            errors.push(source.error(
                &raw.id.referenced,
                format!(
                    "duplicate checklist id `{}`, already defined in {}",
                    raw.id.value,
                    first.path.display()
                ),
            ));
            continue;
        }
        seen_ids.insert(raw.id.value.clone(), source);
        let items = check_items(source, &raw, &mut next_slot, errors);
        for ri in &raw.items {
            if !items.iter().any(|i| i.id == ri.id.value) {
                broken.insert(format!("{}.{}", raw.id.value, ri.id.value));
            }
        }
        parsed.push(Parsed { source, raw, items });
    }

    let mut table = ItemTable {
        by_checklist: HashMap::new(),
        option_ids: HashMap::new(),
        broken,
        some_file_unparsed,
    };
    for p in &parsed {
        let entry = table
            .by_checklist
            .entry(p.raw.id.value.clone())
            .or_default();
        for item in &p.items {
            entry.insert(item.id.clone(), (item.slot, item.kind.clone()));
            if let ItemKind::Choice(opts) | ItemKind::MultiChoice(opts) = &item.kind {
                table
                    .option_ids
                    .insert(item.slot, opts.iter().map(|o| o.id.clone()).collect());
            }
        }
    }

    let mut checklists = Vec::new();
    let mut next_rule = 0u32;
    for p in parsed {
        let c = compile_checklist(p, &table, &mut next_rule, errors);
        let raw_rules = c.rule_ids_declared.clone();
        for id in raw_rules {
            if !c.rules.iter().any(|r| r.id == id) {
                table.broken.insert(format!("{}.{id}", c.id));
            }
        }
        checklists.push(c);
    }
    (checklists, table)
}

fn check_header(source: &Source, raw: &RawChecklist, errors: &mut LoadErrors) {
    if !is_identifier(&raw.id.value) {
        errors.push(source.error(
            &raw.id.referenced,
            format!("invalid checklist id `{}`: expected lower-case letters, digits and `_`, starting with a letter", raw.id.value),
        ));
    }
    if !is_semver(&raw.version.value) {
        errors.push(source.error(
            &raw.version.referenced,
            format!(
                "invalid version `{}`: expected a semantic version such as 1.0.0",
                raw.version.value
            ),
        ));
    }
}

fn check_items(
    source: &Source,
    raw: &RawChecklist,
    next_slot: &mut u32,
    errors: &mut LoadErrors,
) -> Vec<Item> {
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    for ri in &raw.items {
        if !is_identifier(&ri.id.value) {
            errors.push(source.error(
                &ri.id.referenced,
                format!("invalid item id `{}`: expected lower-case letters, digits and `_`, starting with a letter", ri.id.value),
            ));
        }
        if !seen.insert(ri.id.value.as_str()) {
            errors.push(source.error(
                &ri.id.referenced,
                format!("duplicate item id `{}`", ri.id.value),
            ));
            continue;
        }
        let Some(kind) = item_kind(source, ri, errors) else {
            continue;
        };
        let photo = photo_policy(source, ri, &kind, errors);
        let required = match kind {
            ItemKind::Text | ItemKind::Photo => ri.required.unwrap_or(false),
            _ => ri.required.unwrap_or(true),
        };
        items.push(Item {
            id: ri.id.value.clone(),
            key: format!("{}.{}", raw.id.value, ri.id.value),
            question: ri.question.clone(),
            hint: ri.hint.clone(),
            kind,
            when: None,
            required,
            photo,
            slot: *next_slot,
            checked_by: Vec::new(),
        });
        *next_slot += 1;
    }
    items
}

fn item_kind(source: &Source, ri: &RawItem, errors: &mut LoadErrors) -> Option<ItemKind> {
    let ty = ri.kind.value;
    let start = errors.errors.len();
    let name = match ty {
        RawItemType::Boolean => "boolean",
        RawItemType::Number => "number",
        RawItemType::Count => "count",
        RawItemType::Choice => "choice",
        RawItemType::MultiChoice => "multi_choice",
        RawItemType::Text => "text",
        RawItemType::Photo => "photo",
    };
    let not_allowed = |errors: &mut LoadErrors, key: &str, at: &serde_saphyr::Location| {
        errors.push(source.error(at, format!("`{key}` is not allowed on a {name} item")));
    };
    if ty != RawItemType::Number
        && let Some(u) = &ri.unit
    {
        not_allowed(errors, "unit", &u.referenced);
    }
    if !matches!(ty, RawItemType::Number | RawItemType::Count)
        && let Some(r) = &ri.range
    {
        not_allowed(errors, "range", &r.referenced);
    }
    if !matches!(ty, RawItemType::Choice | RawItemType::MultiChoice)
        && let Some(o) = &ri.options
    {
        not_allowed(errors, "options", &o.referenced);
    }
    let range = |errors: &mut LoadErrors| -> Option<(f64, f64)> {
        let Some(r) = &ri.range else {
            errors.push(source.error(
                &ri.kind.referenced,
                format!("a {name} item needs `range: [min, max]`"),
            ));
            return None;
        };
        match r.value.as_slice() {
            [min, max] if min.is_finite() && max.is_finite() && min <= max => Some((*min, *max)),
            _ => {
                errors.push(source.error(
                    &r.referenced,
                    "expected `range: [min, max]` with finite min <= max",
                ));
                None
            }
        }
    };
    let kind = match ty {
        RawItemType::Boolean => ItemKind::Boolean,
        RawItemType::Text => ItemKind::Text,
        RawItemType::Photo => ItemKind::Photo,
        RawItemType::Number => {
            let unit = ri.unit.as_ref().map(|u| u.value);
            if unit.is_none() {
                errors.push(source.error(
                    &ri.kind.referenced,
                    "a number item needs a `unit` (m, cm, mm, percent, deg, lx, dB, N, s, min)",
                ));
            }
            let (min, max) = range(errors)?;
            ItemKind::Number {
                unit: unit?,
                min,
                max,
            }
        }
        RawItemType::Count => {
            let (min, max) = range(errors)?;
            if min.fract() != 0.0 || max.fract() != 0.0 {
                if let Some(r) = &ri.range {
                    errors.push(source.error(&r.referenced, "a count range needs whole numbers"));
                }
                return None;
            }
            // Ranges are checked finite above; the casts saturate for absurd values.
            ItemKind::Count {
                min: min as i64,
                max: max as i64,
            }
        }
        RawItemType::Choice | RawItemType::MultiChoice => {
            let options = choice_options(source, ri, errors)?;
            if ty == RawItemType::Choice {
                ItemKind::Choice(options)
            } else {
                ItemKind::MultiChoice(options)
            }
        }
    };
    (errors.errors.len() == start).then_some(kind)
}

fn choice_options(
    source: &Source,
    ri: &RawItem,
    errors: &mut LoadErrors,
) -> Option<Vec<ChoiceOption>> {
    let Some(opts) = &ri.options else {
        errors.push(source.error(&ri.kind.referenced, "a choice item needs `options`"));
        return None;
    };
    if opts.value.is_empty() || opts.value.len() > MAX_OPTIONS {
        errors.push(source.error(
            &opts.referenced,
            format!(
                "expected 1 to {MAX_OPTIONS} options, found {}",
                opts.value.len()
            ),
        ));
        return None;
    }
    let mut seen = HashSet::new();
    for o in &opts.value {
        if !is_identifier(&o.id.value) {
            errors.push(source.error(
                &o.id.referenced,
                format!(
                    "invalid option id `{}`: expected lower-case letters, digits and `_`",
                    o.id.value
                ),
            ));
        }
        if !seen.insert(o.id.value.as_str()) {
            errors.push(source.error(
                &o.id.referenced,
                format!("duplicate option id `{}`", o.id.value),
            ));
        }
    }
    Some(
        opts.value
            .iter()
            .map(|o| ChoiceOption {
                id: o.id.value.clone(),
                label: o.label.clone(),
            })
            .collect(),
    )
}

fn photo_policy(
    source: &Source,
    ri: &RawItem,
    kind: &ItemKind,
    errors: &mut LoadErrors,
) -> PhotoPolicy {
    let policy = ri.photo.as_ref().map(|p| p.value);
    match (kind, policy) {
        (ItemKind::Photo, None) => PhotoPolicy::Required,
        (ItemKind::Photo, Some(PhotoPolicy::Never)) => {
            if let Some(p) = &ri.photo {
                errors.push(source.error(&p.referenced, "a photo item cannot have `photo: never`"));
            }
            PhotoPolicy::Never
        }
        (k, Some(PhotoPolicy::RequiredIfTrue)) if *k != ItemKind::Boolean => {
            if let Some(p) = &ri.photo {
                errors.push(source.error(
                    &p.referenced,
                    "`photo: required_if_true` needs a boolean item",
                ));
            }
            PhotoPolicy::RequiredIfTrue
        }
        (_, p) => p.unwrap_or_default(),
    }
}

fn compile_checklist(
    p: Parsed<'_>,
    table: &ItemTable,
    next_rule: &mut u32,
    errors: &mut LoadErrors,
) -> Checklist {
    let Parsed {
        source,
        raw,
        mut items,
    } = p;
    let id = raw.id.value.as_str();
    for item in &mut items {
        let Some(ri) = raw.items.iter().find(|ri| ri.id.value == item.id) else {
            continue;
        };
        if let Some(when) = &ri.when {
            let scope = ChecklistScope {
                table,
                current: id,
                own_item: Some(&ri.id.value),
            };
            item.when = compile(source, when, "when", &scope, errors);
        }
    }
    let mut rules = Vec::new();
    let mut seen = HashSet::new();
    for rr in &raw.rules {
        if !seen.insert(rr.id.value.as_str()) {
            errors.push(source.error(
                &rr.id.referenced,
                format!("duplicate rule id `{}`", rr.id.value),
            ));
            continue;
        }
        if let Some(rule) = compile_rule(source, &raw, rr, table, errors) {
            let index = *next_rule;
            if let RuleTest::Check(check) = &rule.test {
                for slot in check.slots() {
                    if let Some(item) = items.iter_mut().find(|i| i.slot == *slot) {
                        item.checked_by.push(index);
                    }
                }
            }
            rules.push(rule);
            *next_rule += 1;
        }
    }
    // With a rule rejected, "no rule checks it" may be a consequence: do not report it.
    let all_rules_loaded = rules.len() == raw.rules.len();
    for item in &items {
        let Some(ri) = raw.items.iter().find(|ri| ri.id.value == item.id) else {
            continue;
        };
        if all_rules_loaded
            && item.photo == PhotoPolicy::RequiredIfFail
            && item.checked_by.is_empty()
            && let Some(p) = &ri.photo
        {
            errors.push(source.error(
                &p.referenced,
                format!(
                    "`photo: required_if_fail` on `{}`, but no rule of this checklist checks it",
                    item.id
                ),
            ));
        }
    }
    Checklist {
        rule_ids_declared: raw.rules.iter().map(|r| r.id.value.clone()).collect(),
        id: raw.id.value.clone(),
        version: raw.version.value.clone(),
        zone: raw.zone,
        title: raw.title.clone(),
        description: raw.description.clone(),
        items,
        rules,
        sha256: source.sha256.clone(),
        file: source.path.clone(),
    }
}

fn compile_rule(
    source: &Source,
    raw: &RawChecklist,
    rr: &RawRule,
    table: &ItemTable,
    errors: &mut LoadErrors,
) -> Option<Rule> {
    let checklist = raw.id.value.as_str();
    if !is_identifier(&rr.id.value) {
        errors.push(source.error(
            &rr.id.referenced,
            format!("invalid rule id `{}`: expected lower-case letters, digits and `_`, starting with a letter", rr.id.value),
        ));
    }
    let scope = ChecklistScope {
        table,
        current: checklist,
        own_item: None,
    };
    let when = rr
        .when
        .as_ref()
        .map(|w| compile(source, w, "when", &scope, errors));
    let test = match (&rr.check, &rr.review) {
        (Some(check), None) => compile(source, check, "check", &scope, errors).map(RuleTest::Check),
        (None, Some(review)) => Some(RuleTest::Review(Rendered::new(review.value.clone()))),
        (Some(_), Some(review)) => {
            errors.push(source.error(
                &review.referenced,
                "a rule has either `check` or `review`, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(source.error(
                &rr.id.referenced,
                format!(
                    "rule `{}` needs `check` (an expression) or `review` (what a reviewer judges)",
                    rr.id.value
                ),
            ));
            None
        }
    };
    let mut affects = rr.affects.value.clone();
    affects.sort_unstable();
    affects.dedup();
    if affects.is_empty() || affects.len() != rr.affects.value.len() {
        errors.push(source.error(
            &rr.affects.referenced,
            "`affects` needs at least one of К, О, С, Г, У, each once",
        ));
    }
    let test = test?;
    // A `when` that failed to compile has been reported; the rule is dropped.
    let when = match when {
        Some(None) => return None,
        Some(Some(w)) => Some(w),
        None => None,
    };
    let mut reads: Vec<u32> = when
        .as_ref()
        .map(|w| w.slots().to_vec())
        .unwrap_or_default();
    if let RuleTest::Check(c) = &test {
        for s in c.slots() {
            if !reads.contains(s) {
                reads.push(*s);
            }
        }
    }
    Some(Rule {
        id: rr.id.value.clone(),
        key: format!("{checklist}.{}", rr.id.value),
        title: rr.title.clone(),
        when,
        test,
        severity: rr.severity,
        affects: Rendered::new(affects),
        norm: Rendered::new(rr.norm.clone()),
        pass: Rendered::new(rr.message.pass.clone()),
        fail: Rendered::new(rr.message.fail.clone()),
        work: rr.work,
        zone: raw.zone,
        reads,
        heads: ResultHeads::default(),
    })
}

pub(crate) fn compile(
    source: &Source,
    text: &Spanned<String>,
    what: &str,
    scope: &dyn Scope,
    errors: &mut LoadErrors,
) -> Option<Expr> {
    match Expr::compile(&text.value, scope) {
        Ok(e) => Some(e),
        Err(e) => {
            if !e.cascade {
                errors.push(source.expr_error(&text.referenced, what, &e));
            }
            None
        }
    }
}
