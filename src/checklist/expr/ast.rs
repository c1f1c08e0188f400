//! Syntax tree of an expression as written, before names are resolved.

use crate::checklist::unit::Unit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub(crate) const fn symbol(self) -> &'static str {
        match self {
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    /// A number with an optional unit suffix (`0.9 m`, `5 %`).
    Num {
        value: f64,
        unit: Option<Unit>,
    },
    Str(String),
    Bool(bool),
    /// `item` or `checklist.item`.
    Ref {
        checklist: Option<String>,
        id: String,
    },
    Call {
        name: String,
        args: Vec<Node>,
    },
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    In(Box<Node>, Vec<Node>),
}

/// An AST node with the character offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub ast: Ast,
    pub pos: usize,
}

impl Node {
    /// The reference as written (`ramp_present`, `entrance.door_width`), for messages.
    pub(crate) fn ref_name(&self) -> Option<String> {
        match &self.ast {
            Ast::Ref {
                checklist: Some(c),
                id,
            } => Some(format!("{c}.{id}")),
            Ast::Ref {
                checklist: None,
                id,
            } => Some(id.clone()),
            _ => None,
        }
    }
}
