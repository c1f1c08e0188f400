//! Tokeniser for the expression language. Positions are character offsets into the
//! expression text, so errors can point at a column inside a YAML scalar.

use super::ExprError;

/// Longest expression accepted, in bytes: checklists are written by people, and a bound
/// keeps the parser's work predictable on hostile input.
pub(crate) const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    True,
    False,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Not,
    AndAnd,
    OrOr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Num(n) => format!("number {n}"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::True => "`true`".into(),
            Tok::False => "`false`".into(),
            Tok::In => "`in`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Not => "`!`".into(),
            Tok::AndAnd => "`&&`".into(),
            Tok::OrOr => "`||`".into(),
            Tok::Eq => "`==`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Percent => "`%`".into(),
            Tok::Eof => "end of expression".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Character offset of the token's first character.
    pub pos: usize,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    if src.len() > MAX_LEN {
        return Err(ExprError::new(
            0,
            format!("expression longer than {MAX_LEN} bytes"),
        ));
    }
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = |next: char| chars.get(i + 1) == Some(&next);
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '.' => (Tok::Dot, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '*' => (Tok::Star, 1),
            '/' => (Tok::Slash, 1),
            '%' => (Tok::Percent, 1),
            '&' if two('&') => (Tok::AndAnd, 2),
            '|' if two('|') => (Tok::OrOr, 2),
            '=' if two('=') => (Tok::Eq, 2),
            '!' if two('=') => (Tok::Ne, 2),
            '!' => (Tok::Not, 1),
            '<' if two('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if two('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '&' | '|' => {
                return Err(ExprError::new(
                    start,
                    format!("expected `{c}{c}`, found a single `{c}`"),
                ));
            }
            '=' => {
                return Err(ExprError::new(
                    start,
                    "expected `==` for comparison, found `=`",
                ));
            }
            '"' | '\'' => {
                let (s, len) = string(&chars[i..], start)?;
                (Tok::Str(s), len)
            }
            c if c.is_ascii_digit() => {
                let (n, len) = number(&chars[i..], start)?;
                (Tok::Num(n), len)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .count();
                let word: String = chars[i..i + len].iter().collect();
                let tok = match word.as_str() {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "in" => Tok::In,
                    _ => Tok::Ident(word),
                };
                (tok, len)
            }
            other => {
                return Err(ExprError::new(
                    start,
                    format!("unexpected character `{other}`"),
                ));
            }
        };
        out.push(Token { tok, pos: start });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: chars.len(),
    });
    Ok(out)
}

fn string(chars: &[char], start: usize) -> Result<(String, usize), ExprError> {
    let quote = chars[0];
    let mut s = String::new();
    for (k, &c) in chars.iter().enumerate().skip(1) {
        if c == quote {
            return Ok((s, k + 1));
        }
        s.push(c);
    }
    Err(ExprError::new(start, "unterminated string literal"))
}

fn number(chars: &[char], start: usize) -> Result<(f64, usize), ExprError> {
    let mut len = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    if chars.get(len) == Some(&'.') && chars.get(len + 1).is_some_and(char::is_ascii_digit) {
        len += 1 + chars[len + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
    }
    let text: String = chars[..len].iter().collect();
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(|n| (n, len))
        .ok_or_else(|| ExprError::new(start, format!("invalid number `{text}`")))
}
