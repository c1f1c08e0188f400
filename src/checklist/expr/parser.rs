//! Recursive-descent parser. Precedence, loosest first: `||`, `&&`, `!`, comparisons and
//! `in`, `+ -`, `* /`, unary `-`. Comparisons do not chain (`a < b < c` is an error).
//! Nesting is bounded by [`MAX_DEPTH`] and the depth of the resulting tree by
//! [`MAX_TREE_DEPTH`], so hostile input cannot overflow the stack of the parser, the
//! checker or the evaluator (all three recurse over the tree).

use super::ExprError;
use super::ast::{Ast, BinOp, Node};
use super::lexer::{Tok, Token, tokenize};
use crate::checklist::unit::Unit;

/// Deepest nesting of parentheses and unary operators accepted.
pub(crate) const MAX_DEPTH: usize = 48;

/// Most operands in one chain of the same precedence (`a && b && ...`); chains build
/// left-deep trees, so this bounds the depth the checker and evaluator recurse to.
pub(crate) const MAX_OPERANDS: usize = 64;

/// Deepest syntax tree accepted. Parentheses alone are bounded by [`MAX_DEPTH`], but each
/// level may also hold left-deep chains of up to [`MAX_OPERANDS`] operands per operator
/// precedence, so without this bound a 4 KiB expression builds a tree about 2000 levels
/// deep that the checker and evaluator walk recursively (over 512 KiB of stack in a debug
/// build). Real rules are a few levels deep.
pub(crate) const MAX_TREE_DEPTH: usize = 200;

/// Parses a complete expression.
pub(crate) fn parse(src: &str) -> Result<Node, ExprError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let node = p.or()?;
    match p.peek() {
        Tok::Eof => {
            check_tree_depth(&node)?;
            Ok(node)
        }
        other => Err(p.error(format!(
            "expected an operator or end of expression, found {}",
            other.describe()
        ))),
    }
}

/// Rejects trees deeper than [`MAX_TREE_DEPTH`], walking them without recursion.
fn check_tree_depth(root: &Node) -> Result<(), ExprError> {
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_TREE_DEPTH {
            return Err(ExprError::new(
                node.pos,
                format!(
                    "expression nested deeper than {MAX_TREE_DEPTH} levels of operators; split it into simpler rules"
                ),
            ));
        }
        match &node.ast {
            Ast::Not(inner) | Ast::Neg(inner) => stack.push((inner, depth + 1)),
            Ast::Binary(_, l, r) => {
                stack.push((l, depth + 1));
                stack.push((r, depth + 1));
            }
            Ast::In(l, list) => {
                stack.push((l, depth + 1));
                stack.extend(list.iter().map(|n| (n, depth + 1)));
            }
            Ast::Call { args, .. } => stack.extend(args.iter().map(|n| (n, depth + 1))),
            Ast::Num { .. } | Ast::Str(_) | Ast::Bool(_) | Ast::Ref { .. } => {}
        }
    }
    Ok(())
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        // The token list always ends with Eof and `at` never moves past it.
        self.tokens.get(self.at).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens
            .get(self.at)
            .or(self.tokens.last())
            .map_or(0, |t| t.pos)
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        tok
    }

    fn error(&self, message: impl Into<String>) -> ExprError {
        ExprError::new(self.pos(), message)
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.peek().describe())))
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn binary_chain(
        &mut self,
        ops: &[(Tok, BinOp)],
        next: fn(&mut Self) -> Result<Node, ExprError>,
    ) -> Result<Node, ExprError> {
        let mut left = next(self)?;
        let mut operands = 1;
        while let Some((_, op)) = ops.iter().find(|(t, _)| t == self.peek()) {
            let op = *op;
            let pos = self.pos();
            operands += 1;
            if operands > MAX_OPERANDS {
                return Err(self.error(format!(
                    "more than {MAX_OPERANDS} operands in one chain of `{}`",
                    op.symbol()
                )));
            }
            self.bump();
            let right = next(self)?;
            left = Node {
                ast: Ast::Binary(op, Box::new(left), Box::new(right)),
                pos,
            };
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        self.binary_chain(&[(Tok::OrOr, BinOp::Or)], Self::and)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        self.binary_chain(&[(Tok::AndAnd, BinOp::And)], Self::not)
    }

    fn not(&mut self) -> Result<Node, ExprError> {
        if *self.peek() == Tok::Not {
            let pos = self.pos();
            self.bump();
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Node {
                ast: Ast::Not(Box::new(inner)),
                pos,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node, ExprError> {
        const OPS: [(Tok, BinOp); 6] = [
            (Tok::Eq, BinOp::Eq),
            (Tok::Ne, BinOp::Ne),
            (Tok::Lt, BinOp::Lt),
            (Tok::Le, BinOp::Le),
            (Tok::Gt, BinOp::Gt),
            (Tok::Ge, BinOp::Ge),
        ];
        let left = self.sum()?;
        let pos = self.pos();
        let node = if let Some((_, op)) = OPS.iter().find(|(t, _)| t == self.peek()) {
            let op = *op;
            self.bump();
            let right = self.sum()?;
            Node {
                ast: Ast::Binary(op, Box::new(left), Box::new(right)),
                pos,
            }
        } else if *self.peek() == Tok::In {
            self.bump();
            let list = self.list()?;
            Node {
                ast: Ast::In(Box::new(left), list),
                pos,
            }
        } else {
            return Ok(left);
        };
        if OPS.iter().any(|(t, _)| t == self.peek()) || *self.peek() == Tok::In {
            return Err(self.error("comparisons cannot be chained; combine them with `&&`"));
        }
        Ok(node)
    }

    fn list(&mut self) -> Result<Vec<Node>, ExprError> {
        self.expect(&Tok::LBracket, "`[` starting the list after `in`")?;
        let mut items = Vec::new();
        if *self.peek() == Tok::RBracket {
            return Err(self.error("the list after `in` is empty"));
        }
        loop {
            items.push(self.literal()?);
            let pos = self.pos();
            match self.bump() {
                Tok::Comma => {}
                Tok::RBracket => return Ok(items),
                other => {
                    return Err(ExprError::new(
                        pos,
                        format!(
                            "expected `,` or `]` in the list, found {}",
                            other.describe()
                        ),
                    ));
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Node, ExprError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(Node {
                    ast: Ast::Str(s),
                    pos,
                })
            }
            Tok::Num(_) | Tok::Minus => self.unary(),
            other => Err(self.error(format!(
                "expected a string or number in the list, found {}",
                other.describe()
            ))),
        }
    }

    fn sum(&mut self) -> Result<Node, ExprError> {
        self.binary_chain(
            &[(Tok::Plus, BinOp::Add), (Tok::Minus, BinOp::Sub)],
            Self::product,
        )
    }

    fn product(&mut self) -> Result<Node, ExprError> {
        self.binary_chain(
            &[(Tok::Star, BinOp::Mul), (Tok::Slash, BinOp::Div)],
            Self::unary,
        )
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if *self.peek() == Tok::Minus {
            let pos = self.pos();
            self.bump();
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node {
                ast: Ast::Neg(Box::new(inner)),
                pos,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let pos = self.pos();
        match self.bump() {
            Tok::Num(value) => {
                let unit = self.unit_suffix()?;
                Ok(Node {
                    ast: Ast::Num { value, unit },
                    pos,
                })
            }
            Tok::Str(s) => Ok(Node {
                ast: Ast::Str(s),
                pos,
            }),
            Tok::True => Ok(Node {
                ast: Ast::Bool(true),
                pos,
            }),
            Tok::False => Ok(Node {
                ast: Ast::Bool(false),
                pos,
            }),
            Tok::LParen => {
                self.enter()?;
                let inner = self.or()?;
                self.depth -= 1;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Tok::Ident(name) => self.reference_or_call(name, pos),
            other => Err(ExprError::new(
                pos,
                format!("expected a value, item or `(`, found {}", other.describe()),
            )),
        }
    }

    /// A unit symbol directly after a number literal: `0.9 m`, `5 %`, `90cm`.
    fn unit_suffix(&mut self) -> Result<Option<Unit>, ExprError> {
        let symbol = match self.peek() {
            Tok::Percent => "%".to_owned(),
            Tok::Ident(s) => s.clone(),
            _ => return Ok(None),
        };
        match Unit::from_symbol(&symbol) {
            Some(unit) => {
                self.bump();
                Ok(Some(unit))
            }
            None => Err(self.error(format!(
                "unknown unit `{symbol}` after a number; expected one of {}",
                Unit::ALL.map(Unit::symbol).join(", ")
            ))),
        }
    }

    fn reference_or_call(&mut self, name: String, pos: usize) -> Result<Node, ExprError> {
        match self.peek() {
            Tok::LParen => {
                self.bump();
                self.enter()?;
                let mut args = Vec::new();
                if *self.peek() != Tok::RParen {
                    loop {
                        args.push(self.or()?);
                        if *self.peek() == Tok::Comma {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                self.expect(&Tok::RParen, "`,` or `)` closing the call")?;
                Ok(Node {
                    ast: Ast::Call { name, args },
                    pos,
                })
            }
            Tok::Dot => {
                self.bump();
                let id_pos = self.pos();
                match self.bump() {
                    Tok::Ident(id) => Ok(Node {
                        ast: Ast::Ref {
                            checklist: Some(name),
                            id,
                        },
                        pos,
                    }),
                    other => Err(ExprError::new(
                        id_pos,
                        format!(
                            "expected an item id after `{name}.`, found {}",
                            other.describe()
                        ),
                    )),
                }
            }
            _ => Ok(Node {
                ast: Ast::Ref {
                    checklist: None,
                    id: name,
                },
                pos,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_units() {
        let n = parse("a <= 5 % || b && !c").ok();
        let Some(Node {
            ast: Ast::Binary(BinOp::Or, l, _),
            ..
        }) = n
        else {
            panic!("not an or: {n:?}")
        };
        assert_eq!(
            l.ast,
            Ast::Binary(
                BinOp::Le,
                Box::new(Node {
                    ast: Ast::Ref {
                        checklist: None,
                        id: "a".into()
                    },
                    pos: 0
                }),
                Box::new(Node {
                    ast: Ast::Num {
                        value: 5.0,
                        unit: Some(Unit::Percent)
                    },
                    pos: 5
                })
            )
        );
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        let e = parse("width_m >= 0.9 m &&").err();
        assert_eq!(
            e.map(|e| (e.pos, e.message)),
            Some((
                19,
                "expected a value, item or `(`, found end of expression".into()
            ))
        );
        let e = parse("a < b < c").err();
        assert_eq!(e.map(|e| e.pos), Some(6));
        let e = parse("x = 1").err();
        assert_eq!(e.map(|e| e.pos), Some(2));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        let negs = "-".repeat(10_000) + "1";
        assert!(parse(&negs).is_err());
    }

    /// Regression: chains inside every parenthesis level used to build a tree about 2000
    /// levels deep from 4 KiB of text, which the checker and evaluator recurse over.
    #[test]
    fn tree_depth_is_bounded_for_chains_inside_parentheses() {
        let mut deep = String::from("a");
        for _ in 0..40 {
            deep = format!("({deep}{})", " + a".repeat(20));
        }
        deep.push_str(" >= 1");
        assert!(deep.len() < super::super::lexer::MAX_LEN);
        let e = parse(&deep).err().map(|e| e.message);
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("nested deeper than 200 levels")),
            "{e:?}"
        );
        // A long but shallow rule is fine.
        let wide = vec!["a >= 1"; 64].join(" && ");
        assert!(parse(&wide).is_ok());
    }
}
