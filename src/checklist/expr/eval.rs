//! Evaluation with Kleene three-valued logic: `None` is unknown. An unknown operand makes
//! a comparison unknown, `false && unknown` is false and `true || unknown` is true, so an
//! unanswered item never turns into a failure on its own.

use super::{CmpOp, Code};
use crate::checklist::types::Outcome;

/// An answer held in a slot, already converted to base units and option indices.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) enum Value {
    #[default]
    Unknown,
    Bool(bool),
    Num(f64),
    /// Index of the chosen option.
    Choice(u8),
    /// Bit set of chosen options.
    Multi(u64),
    /// A text answer; its content never enters expressions.
    Text,
}

/// What an expression reads: answers by slot, and rule outcomes by rule index.
pub(crate) struct Env<'a> {
    pub slots: &'a [Value],
    pub rules: &'a [Outcome],
}

pub(crate) fn truth(code: &Code, env: &Env<'_>) -> Option<bool> {
    match code {
        Code::Bool(b) => Some(*b),
        Code::Slot(s) => match slot(env, *s) {
            Value::Bool(b) => Some(b),
            _ => None,
        },
        Code::Answered(s) => Some(slot(env, *s) != Value::Unknown),
        Code::HasAny(s, mask) => match slot(env, *s) {
            Value::Multi(m) => Some(m & mask != 0),
            _ => None,
        },
        Code::ChoiceIn(s, mask) => match slot(env, *s) {
            Value::Choice(i) => Some(1u64.checked_shl(u32::from(i)).unwrap_or(0) & mask != 0),
            _ => None,
        },
        Code::RulePassed { rule, na_counts } => match env.rules.get(*rule as usize)? {
            Outcome::Pass => Some(true),
            Outcome::Fail => Some(false),
            Outcome::NotApplicable => Some(*na_counts),
            Outcome::Incomplete | Outcome::NeedsReview => None,
        },
        Code::Not(inner) => truth(inner, env).map(|b| !b),
        Code::And(pair) => match truth(&pair[0], env) {
            Some(false) => Some(false),
            left => match (left, truth(&pair[1], env)) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
        },
        Code::Or(pair) => match truth(&pair[0], env) {
            Some(true) => Some(true),
            left => match (left, truth(&pair[1], env)) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
        },
        Code::CmpBool(eq, pair) => {
            let (a, b) = (truth(&pair[0], env)?, truth(&pair[1], env)?);
            Some((a == b) == *eq)
        }
        Code::Cmp(op, pair) => {
            let (a, b) = (number(&pair[0], env)?, number(&pair[1], env)?);
            Some(compare(*op, a, b))
        }
        Code::Num(_) | Code::Count(_) | Code::Neg(_) | Code::Arith(..) => None,
    }
}

/// Comparisons of measurements tolerate rounding: 0.1 m + 0.2 m is not above 0.3 m.
const EPSILON: f64 = 1e-9;

fn compare(op: CmpOp, a: f64, b: f64) -> bool {
    let eq = (a - b).abs() <= EPSILON * a.abs().max(b.abs()).max(1.0);
    match op {
        CmpOp::Eq => eq,
        CmpOp::Ne => !eq,
        CmpOp::Lt => a < b && !eq,
        CmpOp::Le => a < b || eq,
        CmpOp::Gt => a > b && !eq,
        CmpOp::Ge => a > b || eq,
    }
}

fn number(code: &Code, env: &Env<'_>) -> Option<f64> {
    match code {
        Code::Num(n) => Some(*n),
        Code::Slot(s) => match slot(env, *s) {
            Value::Num(n) => Some(n),
            _ => None,
        },
        Code::Count(s) => match slot(env, *s) {
            Value::Multi(m) => Some(f64::from(m.count_ones())),
            _ => None,
        },
        Code::Neg(inner) => number(inner, env).map(|n| -n),
        Code::Arith(op, pair) => {
            let v = op.apply(number(&pair[0], env)?, number(&pair[1], env)?);
            // Division by a zero answer has no meaningful result: treat it as unknown.
            v.is_finite().then_some(v)
        }
        _ => None,
    }
}

fn slot(env: &Env<'_>, s: u32) -> Value {
    env.slots.get(s as usize).copied().unwrap_or_default()
}
