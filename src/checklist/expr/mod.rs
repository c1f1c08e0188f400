//! The checklist expression language: a small, non-Turing-complete language for rule
//! checks, applicability conditions and methodology mappings.
//!
//! Why not CEL: a purpose-built checker knows items, units and option ids, so an error
//! points at the column inside the expression ("unit mismatch: `slope` is a number in
//! percent but `width` is a number in m"), literals carry units (`0.9 m`), and unknown
//! answers follow Kleene three-valued logic natively. Compiled expressions reference
//! answers by slot index, so evaluation never hashes a string. The grammar is in
//! checklists/README.md.
//!
//! This module owns parsing, checking and evaluation; it knows nothing about files.

mod ast;
mod compile;
mod eval;
mod lexer;
mod parser;

use std::fmt;

pub(crate) use compile::{ItemInfo, ItemTy, Scope};

pub(crate) use eval::{Env, Value};

/// An error inside an expression, at a character offset of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Character offset (0-based) where the problem starts.
    pub pos: usize,
    /// What was expected or what is wrong.
    pub message: String,
    /// The name failed only because what it names failed to load and was reported
    /// already; the loader does not repeat it.
    pub(crate) cascade: bool,
}

impl ExprError {
    pub(crate) fn new(pos: usize, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
            cascade: false,
        }
    }

    pub(crate) fn lookup(pos: usize, failure: Lookup) -> Self {
        match failure {
            Lookup::Missing(message) => Self::new(pos, message),
            Lookup::Cascade => Self {
                pos,
                message: "refers to something that failed to load".into(),
                cascade: true,
            },
        }
    }
}

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// It does not exist; the message says what exists.
    Missing(String),
    /// It was defined but failed to load (already reported).
    Cascade,
}

impl From<String> for Lookup {
    fn from(message: String) -> Self {
        Lookup::Missing(message)
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.pos + 1, self.message)
    }
}

impl std::error::Error for ExprError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl NumOp {
    pub(crate) fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            NumOp::Add => a + b,
            NumOp::Sub => a - b,
            NumOp::Mul => a * b,
            NumOp::Div => a / b,
        }
    }
}

/// A compiled expression node. Numbers are in base units; items are answer slots.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Code {
    Bool(bool),
    Num(f64),
    Slot(u32),
    Answered(u32),
    /// A multiple-choice answer containing any option of the mask.
    HasAny(u32, u64),
    /// Number of options chosen in a multiple-choice answer.
    Count(u32),
    /// A single-choice answer being one of the options of the mask.
    ChoiceIn(u32, u64),
    /// A rule outcome: pass is true, fail false; not_applicable is true only when
    /// `na_counts`; incomplete and needs_review are unknown.
    RulePassed {
        rule: u32,
        na_counts: bool,
    },
    Not(Box<Code>),
    Neg(Box<Code>),
    And(Box<[Code; 2]>),
    Or(Box<[Code; 2]>),
    /// Boolean equality (`true`) or inequality (`false`).
    CmpBool(bool, Box<[Code; 2]>),
    Cmp(CmpOp, Box<[Code; 2]>),
    Arith(NumOp, Box<[Code; 2]>),
}

/// A checked, compiled boolean expression with its source text.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
    code: Code,
    slots: Vec<u32>,
    rules: Vec<u32>,
    keys: Vec<String>,
}

impl Expr {
    /// Parses and checks `source` as a condition in `scope`.
    pub(crate) fn compile(source: &str, scope: &dyn Scope) -> Result<Expr, ExprError> {
        let node = parser::parse(source)?;
        let compiled = compile::compile_bool(&node, scope)?;
        Ok(Expr {
            source: source.to_owned(),
            code: compiled.code,
            slots: compiled.slots,
            rules: compiled.rules,
            keys: compiled.keys,
        })
    }

    /// The expression as written.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Keys (`checklist.item`) of the items read, in order of first appearance.
    #[must_use]
    pub fn item_keys(&self) -> &[String] {
        &self.keys
    }

    /// Answer slots read, in order of first appearance.
    pub(crate) fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// Rules read (methodology expressions only).
    pub(crate) fn rules(&self) -> &[u32] {
        &self.rules
    }

    /// Evaluates to `Some(true)`, `Some(false)` or `None` (unknown).
    pub(crate) fn eval(&self, env: &Env<'_>) -> Option<bool> {
        eval::truth(&self.code, env)
    }
}

/// Checks that `source` parses, without resolving names: used by property tests and by
/// tools that want a syntax check only.
///
/// # Errors
/// Returns the first syntax error with its character offset.
pub fn check_syntax(source: &str) -> Result<(), ExprError> {
    parser::parse(source).map(|_| ())
}
