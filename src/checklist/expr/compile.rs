//! Type checker and compiler: turns a parsed [`Node`] into a [`Code`] tree whose item
//! references are resolved to answer slots, checking types and units on the way.
//!
//! Number typing (documented in checklists/README.md):
//! - an item of type `number` has its unit; its value is held in the dimension's base unit;
//! - a `count` item and `count(...)` are plain numbers without a unit;
//! - a bare literal (`5`) takes the unit of the other operand, so `width_cm >= 90` means
//!   90 cm; a suffixed literal (`0.9 m`) has its own unit and is converted;
//! - `+ -` and comparisons need operands of one dimension; `*` and `/` scale a quantity by
//!   a plain number; a quantity divided by a quantity of the same dimension is a plain
//!   number; a product of two quantities (an area) is rejected.

use super::ast::{Ast, BinOp, Node};
use super::{CmpOp, Code, ExprError, Lookup, NumOp};
use crate::checklist::unit::Unit;

/// What an expression may reference, resolved by the loader.
pub(crate) trait Scope {
    /// Resolves `id` (bare, in the current checklist) or `checklist.id`.
    fn item(&self, checklist: Option<&str>, id: &str) -> Result<ItemInfo<'_>, Lookup>;
    /// Resolves a rule key `checklist.rule` (methodologies only).
    fn rule(&self, key: &str) -> Result<u32, Lookup>;
}

/// The type of an item as the checker sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ItemTy<'a> {
    Bool,
    Number(Unit),
    Count,
    Choice(&'a [String]),
    Multi(&'a [String]),
    Text,
    Photo,
}

#[derive(Debug, Clone)]
pub(crate) struct ItemInfo<'a> {
    pub slot: u32,
    pub ty: ItemTy<'a>,
    /// `checklist.item`, recorded so clients can show what a condition reads.
    pub key: String,
}

/// Static type of a sub-expression.
#[derive(Debug, Clone)]
enum Ty<'a> {
    Bool,
    /// A measured quantity, held in base units; the unit is the one shown in messages.
    Quantity(Unit),
    /// A number without unit (counts, ratios).
    Plain,
    /// A constant number without unit suffix: adopts the other operand's unit.
    Literal(f64),
    Str(String),
    Choice {
        slot: u32,
        options: &'a [String],
    },
    Multi,
    Text,
}

impl Ty<'_> {
    fn describe(&self) -> String {
        match self {
            Ty::Bool => "a boolean".into(),
            Ty::Quantity(u) => format!("a number in {u}"),
            Ty::Plain | Ty::Literal(_) => "a number without unit".into(),
            Ty::Str(_) => "a string".into(),
            Ty::Choice { .. } => "a single-choice item".into(),
            Ty::Multi => "a multiple-choice item".into(),
            Ty::Text => "a text item".into(),
        }
    }
}

/// The result of compiling an expression.
pub(crate) struct Compiled {
    pub code: Code,
    /// Answer slots the expression reads, in order of first appearance, without repeats.
    pub slots: Vec<u32>,
    /// Rules the expression reads (methodologies only).
    pub rules: Vec<u32>,
    /// Keys of the items read, parallel to `slots`.
    pub keys: Vec<String>,
}

/// Checks that `node` is a boolean expression and compiles it.
pub(crate) fn compile_bool(node: &Node, scope: &dyn Scope) -> Result<Compiled, ExprError> {
    let mut c = Checker {
        scope,
        slots: Vec::new(),
        rules: Vec::new(),
        keys: Vec::new(),
    };
    let (code, ty) = c.expr(node)?;
    match ty {
        Ty::Bool => Ok(Compiled {
            code,
            slots: c.slots,
            rules: c.rules,
            keys: c.keys,
        }),
        other => Err(ExprError::new(
            node.pos,
            format!(
                "expected a condition (true/false), found {}",
                other.describe()
            ),
        )),
    }
}

struct Checker<'s> {
    scope: &'s dyn Scope,
    slots: Vec<u32>,
    rules: Vec<u32>,
    keys: Vec<String>,
}

type Typed<'a> = (Code, Ty<'a>);

impl<'s> Checker<'s> {
    fn note_slot(&mut self, info: &ItemInfo<'_>) {
        if !self.slots.contains(&info.slot) {
            self.slots.push(info.slot);
            self.keys.push(info.key.clone());
        }
    }

    fn expr(&mut self, node: &Node) -> Result<Typed<'s>, ExprError> {
        let at = |m: String| ExprError::new(node.pos, m);
        match &node.ast {
            Ast::Bool(b) => Ok((Code::Bool(*b), Ty::Bool)),
            Ast::Num { value, unit: None } => Ok((Code::Num(*value), Ty::Literal(*value))),
            Ast::Num {
                value,
                unit: Some(u),
            } => Ok((Code::Num(u.to_base(*value)), Ty::Quantity(*u))),
            Ast::Str(s) => Ok((Code::Bool(false), Ty::Str(s.clone()))),
            Ast::Ref { checklist, id } => self.reference(node, checklist.as_deref(), id),
            Ast::Call { name, args } => self.call(node, name, args),
            Ast::Not(inner) => {
                let (code, ty) = self.expr(inner)?;
                match ty {
                    Ty::Bool => Ok((Code::Not(Box::new(code)), Ty::Bool)),
                    other => Err(ExprError::new(
                        inner.pos,
                        format!("`!` needs a condition, found {}", other.describe()),
                    )),
                }
            }
            Ast::Neg(inner) => match self.expr(inner)? {
                (_, Ty::Literal(v)) => Ok((Code::Num(-v), Ty::Literal(-v))),
                (code, ty @ (Ty::Quantity(_) | Ty::Plain)) => Ok((Code::Neg(Box::new(code)), ty)),
                (_, other) => Err(at(format!(
                    "unary `-` needs a number, found {}",
                    other.describe()
                ))),
            },
            Ast::Binary(op, l, r) => self.binary(node, *op, l, r),
            Ast::In(left, list) => self.membership(node, left, list),
        }
    }

    fn reference(
        &mut self,
        node: &Node,
        checklist: Option<&str>,
        id: &str,
    ) -> Result<Typed<'s>, ExprError> {
        let info = self
            .scope
            .item(checklist, id)
            .map_err(|m| ExprError::lookup(node.pos, m))?;
        let slot = info.slot;
        let ty = match info.ty {
            ItemTy::Bool => Ty::Bool,
            ItemTy::Number(u) => Ty::Quantity(u),
            ItemTy::Count => Ty::Plain,
            ItemTy::Choice(options) => Ty::Choice { slot, options },
            ItemTy::Multi(_) => Ty::Multi,
            ItemTy::Text => Ty::Text,
            ItemTy::Photo => {
                return Err(ExprError::new(
                    node.pos,
                    format!(
                        "`{}` is a photo slot and has no answer to test",
                        node.ref_name().unwrap_or_default()
                    ),
                ));
            }
        };
        self.note_slot(&info);
        Ok((Code::Slot(slot), ty))
    }

    fn call(&mut self, node: &Node, name: &str, args: &[Node]) -> Result<Typed<'s>, ExprError> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(ExprError::new(
                    node.pos,
                    format!("`{name}` takes {n} argument(s), found {}", args.len()),
                ))
            }
        };
        let item_arg = |this: &mut Self, arg: &Node| -> Result<ItemInfo<'s>, ExprError> {
            match &arg.ast {
                Ast::Ref { checklist, id } => {
                    let info = this
                        .scope
                        .item(checklist.as_deref(), id)
                        .map_err(|m| ExprError::lookup(arg.pos, m))?;
                    this.note_slot(&info);
                    Ok(info)
                }
                _ => Err(ExprError::new(
                    arg.pos,
                    format!("`{name}` needs an item reference as its first argument"),
                )),
            }
        };
        match name {
            "answered" => {
                arity(1)?;
                let info = item_arg(self, &args[0])?;
                if let ItemTy::Photo = info.ty {
                    return Err(ExprError::new(
                        args[0].pos,
                        "photo slots have no answer; `answered` cannot test them",
                    ));
                }
                Ok((Code::Answered(info.slot), Ty::Bool))
            }
            "count" => {
                arity(1)?;
                let info = item_arg(self, &args[0])?;
                match info.ty {
                    ItemTy::Multi(_) => Ok((Code::Count(info.slot), Ty::Plain)),
                    _ => Err(ExprError::new(
                        args[0].pos,
                        "`count` needs a multiple-choice item",
                    )),
                }
            }
            "has" => {
                arity(2)?;
                let info = item_arg(self, &args[0])?;
                let ItemTy::Multi(options) = info.ty else {
                    return Err(ExprError::new(
                        args[0].pos,
                        "`has` needs a multiple-choice item as its first argument",
                    ));
                };
                let Ast::Str(option) = &args[1].ast else {
                    return Err(ExprError::new(
                        args[1].pos,
                        "`has` needs an option id string as its second argument",
                    ));
                };
                let mask = option_mask(options, option, args[1].pos)?;
                Ok((Code::HasAny(info.slot, mask), Ty::Bool))
            }
            "passed" | "passed_or_na" => {
                arity(1)?;
                let key = args[0].ref_name().filter(|_| {
                    matches!(
                        args[0].ast,
                        Ast::Ref {
                            checklist: Some(_),
                            ..
                        }
                    )
                });
                let Some(key) = key else {
                    return Err(ExprError::new(
                        args[0].pos,
                        format!("`{name}` needs a rule key `checklist.rule`"),
                    ));
                };
                let rule = self
                    .scope
                    .rule(&key)
                    .map_err(|m| ExprError::lookup(args[0].pos, m))?;
                if !self.rules.contains(&rule) {
                    self.rules.push(rule);
                }
                Ok((
                    Code::RulePassed {
                        rule,
                        na_counts: name == "passed_or_na",
                    },
                    Ty::Bool,
                ))
            }
            other => Err(ExprError::new(
                node.pos,
                format!(
                    "unknown function `{other}`; expected answered, count, has, passed or passed_or_na"
                ),
            )),
        }
    }

    fn binary(
        &mut self,
        node: &Node,
        op: BinOp,
        l: &Node,
        r: &Node,
    ) -> Result<Typed<'s>, ExprError> {
        let (lc, lt) = self.expr(l)?;
        let (rc, rt) = self.expr(r)?;
        match op {
            BinOp::And | BinOp::Or => {
                for (ty, side) in [(&lt, l), (&rt, r)] {
                    if !matches!(ty, Ty::Bool) {
                        return Err(ExprError::new(
                            side.pos,
                            format!(
                                "`{}` needs conditions on both sides, found {}",
                                op.symbol(),
                                ty.describe()
                            ),
                        ));
                    }
                }
                let code = if op == BinOp::And {
                    Code::And(Box::new([lc, rc]))
                } else {
                    Code::Or(Box::new([lc, rc]))
                };
                Ok((code, Ty::Bool))
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                self.comparison(node, op, (lc, lt, l), (rc, rt, r))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                arithmetic(node, op, (lc, lt, l), (rc, rt, r))
            }
        }
    }

    fn comparison(
        &mut self,
        node: &Node,
        op: BinOp,
        left: (Code, Ty<'s>, &Node),
        right: (Code, Ty<'s>, &Node),
    ) -> Result<Typed<'s>, ExprError> {
        let cmp = match op {
            BinOp::Eq => CmpOp::Eq,
            BinOp::Ne => CmpOp::Ne,
            BinOp::Lt => CmpOp::Lt,
            BinOp::Le => CmpOp::Le,
            BinOp::Gt => CmpOp::Gt,
            _ => CmpOp::Ge,
        };
        let equality = matches!(cmp, CmpOp::Eq | CmpOp::Ne);
        match (&left.1, &right.1) {
            (Ty::Bool, Ty::Bool) if equality => Ok((
                Code::CmpBool(cmp == CmpOp::Eq, Box::new([left.0, right.0])),
                Ty::Bool,
            )),
            (Ty::Choice { slot, options }, Ty::Str(s))
            | (Ty::Str(s), Ty::Choice { slot, options })
                if equality =>
            {
                let pos = if matches!(left.1, Ty::Str(_)) {
                    left.2.pos
                } else {
                    right.2.pos
                };
                let code = Code::ChoiceIn(*slot, option_mask(options, s, pos)?);
                Ok((
                    if cmp == CmpOp::Eq {
                        code
                    } else {
                        Code::Not(Box::new(code))
                    },
                    Ty::Bool,
                ))
            }
            _ => {
                let (lc, rc) = unify_numbers(node, op, left, right)?;
                Ok((Code::Cmp(cmp, Box::new([lc, rc])), Ty::Bool))
            }
        }
    }

    fn membership(
        &mut self,
        node: &Node,
        left: &Node,
        list: &[Node],
    ) -> Result<Typed<'s>, ExprError> {
        let (_, ty) = self.expr(left)?;
        let Ty::Choice { slot, options } = ty else {
            return Err(ExprError::new(
                left.pos,
                format!(
                    "`in` needs a single-choice item on its left, found {}",
                    ty.describe()
                ),
            ));
        };
        let mut mask = 0u64;
        for entry in list {
            let Ast::Str(s) = &entry.ast else {
                return Err(ExprError::new(
                    entry.pos,
                    "the list after `in` must hold option id strings",
                ));
            };
            mask |= option_mask(options, s, entry.pos)?;
        }
        let _ = node;
        Ok((Code::ChoiceIn(slot, mask), Ty::Bool))
    }
}

fn option_mask(options: &[String], option: &str, pos: usize) -> Result<u64, ExprError> {
    options
        .iter()
        .position(|o| o == option)
        .map(|i| 1u64 << i)
        .ok_or_else(|| {
            ExprError::new(
                pos,
                format!(
                    "unknown option \"{option}\"; expected one of {}",
                    options.join(", ")
                ),
            )
        })
}

/// Brings two numeric operands to a common unit for comparison, `+` or `-`.
fn unify_numbers(
    node: &Node,
    op: BinOp,
    (lc, lt, l): (Code, Ty<'_>, &Node),
    (rc, rt, r): (Code, Ty<'_>, &Node),
) -> Result<(Code, Code), ExprError> {
    let name = |n: &Node, t: &Ty<'_>| match n.ref_name() {
        Some(r) => format!("`{r}` is {}", t.describe()),
        None => format!(
            "the {} operand is {}",
            if std::ptr::eq(n, l) { "left" } else { "right" },
            t.describe()
        ),
    };
    match (&lt, &rt) {
        (Ty::Quantity(a), Ty::Quantity(b)) if a.dimension() == b.dimension() => Ok((lc, rc)),
        (Ty::Quantity(u), Ty::Literal(v)) => Ok((lc, Code::Num(u.to_base(*v)))),
        (Ty::Literal(v), Ty::Quantity(u)) => Ok((Code::Num(u.to_base(*v)), rc)),
        (Ty::Plain | Ty::Literal(_), Ty::Plain | Ty::Literal(_)) => Ok((lc, rc)),
        (Ty::Quantity(_) | Ty::Plain, Ty::Quantity(_) | Ty::Plain) => Err(ExprError::new(
            node.pos,
            format!(
                "unit mismatch in `{}`: {} but {}",
                op.symbol(),
                name(l, &lt),
                name(r, &rt)
            ),
        )),
        _ => {
            let (bad, ty) = if matches!(lt, Ty::Quantity(_) | Ty::Plain | Ty::Literal(_)) {
                (r, &rt)
            } else {
                (l, &lt)
            };
            let hint = match ty {
                Ty::Multi => "; use has(item, \"option\") or count(item)",
                Ty::Text => "; text answers can only be tested with answered(item)",
                Ty::Choice { .. } => {
                    "; compare a single-choice item with == \"option\" or `in [...]`"
                }
                _ => "",
            };
            Err(ExprError::new(
                bad.pos,
                format!(
                    "`{}` cannot compare {} with {}{hint}",
                    op.symbol(),
                    lt.describe(),
                    rt.describe()
                ),
            ))
        }
    }
}

fn arithmetic<'a>(
    node: &Node,
    op: BinOp,
    left: (Code, Ty<'a>, &Node),
    right: (Code, Ty<'a>, &Node),
) -> Result<Typed<'a>, ExprError> {
    let num_op = match op {
        BinOp::Add => NumOp::Add,
        BinOp::Sub => NumOp::Sub,
        BinOp::Mul => NumOp::Mul,
        _ => NumOp::Div,
    };
    // Constant folding keeps literal arithmetic a literal, so `(1 + 1) m` style mixes work.
    if let (Ty::Literal(a), Ty::Literal(b)) = (&left.1, &right.1) {
        if num_op == NumOp::Div && *b == 0.0 {
            return Err(ExprError::new(right.2.pos, "division by zero"));
        }
        let v = num_op.apply(*a, *b);
        return Ok((Code::Num(v), Ty::Literal(v)));
    }
    let result_ty = match (num_op, &left.1, &right.1) {
        (NumOp::Add | NumOp::Sub, _, _) => {
            let ty = match (&left.1, &right.1) {
                (Ty::Quantity(u), _) | (_, Ty::Quantity(u)) => Ty::Quantity(*u),
                _ => Ty::Plain,
            };
            let (lc, rc) = unify_numbers(node, op, left, right)?;
            return Ok((Code::Arith(num_op, Box::new([lc, rc])), ty));
        }
        (_, Ty::Quantity(u), Ty::Plain | Ty::Literal(_)) => Ty::Quantity(*u),
        (NumOp::Mul, Ty::Plain | Ty::Literal(_), Ty::Quantity(u)) => Ty::Quantity(*u),
        (NumOp::Div, Ty::Quantity(a), Ty::Quantity(b)) if a.dimension() == b.dimension() => {
            Ty::Plain
        }
        (_, Ty::Plain | Ty::Literal(_), Ty::Plain | Ty::Literal(_)) => Ty::Plain,
        (NumOp::Mul, Ty::Quantity(a), Ty::Quantity(b)) => {
            return Err(ExprError::new(
                node.pos,
                format!("cannot multiply {a} by {b}: products of units are not supported"),
            ));
        }
        (_, Ty::Quantity(a), Ty::Quantity(b)) => {
            return Err(ExprError::new(
                node.pos,
                format!("unit mismatch in `/`: cannot divide {a} by {b}"),
            ));
        }
        (_, Ty::Plain | Ty::Literal(_), Ty::Quantity(u)) => {
            return Err(ExprError::new(
                node.pos,
                format!("cannot divide a number without unit by {u}"),
            ));
        }
        (_, lt, rt) => {
            let (bad, ty) = if matches!(lt, Ty::Quantity(_) | Ty::Plain | Ty::Literal(_)) {
                (right.2, rt)
            } else {
                (left.2, lt)
            };
            return Err(ExprError::new(
                bad.pos,
                format!("`{}` needs numbers, found {}", op.symbol(), ty.describe()),
            ));
        }
    };
    Ok((Code::Arith(num_op, Box::new([left.0, right.0])), result_ty))
}
