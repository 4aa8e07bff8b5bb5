use super::error::Fault;
use super::lexer::{Tok, Token, lex};

/// Deep enough for any real feature, shallow enough that checking and evaluating the
/// tree recursively cannot exhaust a thread's stack, whatever a manifest contains.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Expr {
    pub kind: Kind,
    /// Column where this (sub)expression starts, for "expected a number" and the like.
    pub col: usize,
    depth: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Num(f64),
    Str(String),
    Bool(bool),
    Name(String),
    /// `[...]`: only meaningful as the last argument of `bucketize` or `one_hot`.
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        op_col: usize,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Call {
        name: String,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

pub(super) fn parse(src: &str) -> Result<Expr, Fault> {
    let mut parser = Parser { tokens: lex(src)?, pos: 0, nesting: 0 };
    let expr = parser.or()?;
    let rest = parser.peek();
    if rest.tok != Tok::End {
        return Err(Fault::new(
            rest.col,
            format!("unexpected {} after a complete expression", rest.describe()),
        ));
    }
    Ok(expr)
}

fn node(kind: Kind, col: usize) -> Result<Expr, Fault> {
    let child = match &kind {
        Kind::Num(_) | Kind::Str(_) | Kind::Bool(_) | Kind::Name(_) => 0,
        Kind::Neg(e) | Kind::Not(e) => e.depth,
        Kind::Binary { lhs, rhs, .. } => lhs.depth.max(rhs.depth),
        Kind::List(items) | Kind::Call { args: items, .. } => {
            items.iter().map(|e| e.depth).max().unwrap_or(0)
        }
    };
    if child >= MAX_DEPTH {
        return Err(too_deep(col));
    }
    Ok(Expr { kind, col, depth: child + 1 })
}

fn too_deep(col: usize) -> Fault {
    Fault::new(col, format!("expression is nested more than {MAX_DEPTH} levels deep"))
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    /// Recursion depth of the descent itself: `((((...` would otherwise overflow the
    /// stack before any node is built.
    nesting: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token<'a> {
        &self.tokens[self.pos]
    }

    fn next(&mut self) -> Token<'a> {
        let token = self.tokens[self.pos].clone();
        // `End` is the last token; staying on it makes every later peek see the end.
        if token.tok != Tok::End {
            self.pos += 1;
        }
        token
    }

    fn nested(&mut self, col: usize, inner: fn(&mut Self) -> Result<Expr, Fault>) -> Result<Expr, Fault> {
        if self.nesting >= MAX_DEPTH {
            return Err(too_deep(col));
        }
        self.nesting += 1;
        let result = inner(self);
        self.nesting -= 1;
        result
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), Fault> {
        let token = self.next();
        if token.tok == *tok {
            Ok(())
        } else {
            Err(Fault::new(token.col, format!("expected {what}, got {}", token.describe())))
        }
    }

    /// One left-associative precedence level.
    fn chain(
        &mut self,
        next: fn(&mut Self) -> Result<Expr, Fault>,
        op_of: fn(&Tok) -> Option<BinOp>,
    ) -> Result<Expr, Fault> {
        let mut lhs = next(self)?;
        while let Some(op) = op_of(&self.peek().tok) {
            let op_col = self.next().col;
            let rhs = next(self)?;
            let col = lhs.col;
            lhs = node(Kind::Binary { op, op_col, lhs: Box::new(lhs), rhs: Box::new(rhs) }, col)?;
        }
        Ok(lhs)
    }

    fn or(&mut self) -> Result<Expr, Fault> {
        self.chain(Self::and, |t| (*t == Tok::Or).then_some(BinOp::Or))
    }

    fn and(&mut self) -> Result<Expr, Fault> {
        self.chain(Self::not, |t| (*t == Tok::And).then_some(BinOp::And))
    }

    fn not(&mut self) -> Result<Expr, Fault> {
        if self.peek().tok == Tok::Not {
            let col = self.next().col;
            let operand = self.nested(col, Self::not)?;
            return node(Kind::Not(Box::new(operand)), col);
        }
        self.comparison()
    }

    /// Comparisons do not chain: `a < b < c` would compare a bool with a number, and
    /// `a == b == c` rarely means what it says, so both are refused with a hint.
    fn comparison(&mut self) -> Result<Expr, Fault> {
        let lhs = self.sum()?;
        let Some(op) = comparison_op(&self.peek().tok) else {
            return Ok(lhs);
        };
        let op_col = self.next().col;
        let rhs = self.sum()?;
        let next = self.peek();
        if comparison_op(&next.tok).is_some() {
            let message = "comparisons cannot be chained; join them with `and` or use parentheses";
            return Err(Fault::new(next.col, message));
        }
        let col = lhs.col;
        node(Kind::Binary { op, op_col, lhs: Box::new(lhs), rhs: Box::new(rhs) }, col)
    }

    fn sum(&mut self) -> Result<Expr, Fault> {
        self.chain(Self::product, |t| match t {
            Tok::Plus => Some(BinOp::Add),
            Tok::Minus => Some(BinOp::Sub),
            _ => None,
        })
    }

    fn product(&mut self) -> Result<Expr, Fault> {
        self.chain(Self::unary, |t| match t {
            Tok::Star => Some(BinOp::Mul),
            Tok::Slash => Some(BinOp::Div),
            Tok::Percent => Some(BinOp::Rem),
            _ => None,
        })
    }

    fn unary(&mut self) -> Result<Expr, Fault> {
        if self.peek().tok == Tok::Minus {
            let col = self.next().col;
            let operand = self.nested(col, Self::unary)?;
            return node(Kind::Neg(Box::new(operand)), col);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, Fault> {
        let token = self.next();
        let col = token.col;
        match token.tok {
            Tok::Num(v) => node(Kind::Num(v), col),
            Tok::Str(s) => node(Kind::Str(s), col),
            Tok::True => node(Kind::Bool(true), col),
            Tok::False => node(Kind::Bool(false), col),
            Tok::Ident if self.peek().tok == Tok::LParen => {
                self.next();
                let args = self.items(&Tok::RParen, "`,` or `)`")?;
                node(Kind::Call { name: token.text.to_owned(), args }, col)
            }
            Tok::Ident => node(Kind::Name(token.text.to_owned()), col),
            Tok::LBracket => {
                let items = self.items(&Tok::RBracket, "`,` or `]`")?;
                node(Kind::List(items), col)
            }
            Tok::LParen => {
                let inner = self.nested(col, Self::or)?;
                self.expect(&Tok::RParen, "`)`")?;
                // The parenthesis is where a reader looks for this operand's type error.
                Ok(Expr { col, ..inner })
            }
            _ => Err(Fault::new(col, format!("expected an expression, got {}", token.describe()))),
        }
    }

    /// Comma-separated expressions up to `close`, which has just been opened.
    fn items(&mut self, close: &Tok, what: &str) -> Result<Vec<Expr>, Fault> {
        let mut items = Vec::new();
        if self.peek().tok == *close {
            self.next();
            return Ok(items);
        }
        loop {
            let col = self.peek().col;
            items.push(self.nested(col, Self::or)?);
            let token = self.next();
            if token.tok == *close {
                return Ok(items);
            }
            if token.tok != Tok::Comma {
                return Err(Fault::new(token.col, format!("expected {what}, got {}", token.describe())));
            }
        }
    }
}

fn comparison_op(tok: &Tok) -> Option<BinOp> {
    match tok {
        Tok::Lt => Some(BinOp::Lt),
        Tok::Le => Some(BinOp::Le),
        Tok::Gt => Some(BinOp::Gt),
        Tok::Ge => Some(BinOp::Ge),
        Tok::Eq => Some(BinOp::Eq),
        Tok::Ne => Some(BinOp::Ne),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders the tree fully parenthesised, to check grouping at a glance.
    fn show(e: &Expr) -> String {
        match &e.kind {
            Kind::Num(v) => v.to_string(),
            Kind::Str(s) => format!("'{s}'"),
            Kind::Bool(b) => b.to_string(),
            Kind::Name(n) => n.clone(),
            Kind::List(items) => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(", ")),
            Kind::Neg(x) => format!("(-{})", show(x)),
            Kind::Not(x) => format!("(not {})", show(x)),
            Kind::Binary { op, lhs, rhs, .. } => {
                format!("({} {} {})", show(lhs), op.symbol(), show(rhs))
            }
            Kind::Call { name, args } => {
                format!("{name}({})", args.iter().map(show).collect::<Vec<_>>().join(", "))
            }
        }
    }

    fn p(src: &str) -> String {
        show(&parse(src).unwrap())
    }

    #[test]
    fn precedence_loosest_first() {
        assert_eq!(p("2 + 3 * 4"), "(2 + (3 * 4))");
        assert_eq!(p("a or b and c"), "(a or (b and c))");
        assert_eq!(p("not a and b"), "((not a) and b)");
        assert_eq!(p("not a == b"), "(not (a == b))");
        assert_eq!(p("a + 1 < b * 2"), "((a + 1) < (b * 2))");
        assert_eq!(p("-a * b"), "((-a) * b)");
        assert_eq!(p("a % b + c / d"), "((a % b) + (c / d))");
        assert_eq!(p("x > 1 && y < 2 || !z"), "(((x > 1) and (y < 2)) or (not z))");
    }

    #[test]
    fn left_associative() {
        assert_eq!(p("1 - 2 - 3"), "((1 - 2) - 3)");
        assert_eq!(p("8 / 4 / 2"), "((8 / 4) / 2)");
        assert_eq!(p("a or b or c"), "((a or b) or c)");
    }

    #[test]
    fn parentheses_calls_and_lists() {
        assert_eq!(p("(1 + 2) * 3"), "((1 + 2) * 3)");
        assert_eq!(p("max(a, b + 1)"), "max(a, (b + 1))");
        assert_eq!(p("f()"), "f()");
        assert_eq!(p("bucketize(x, [-1, 0, 2.5])"), "bucketize(x, [(-1), 0, 2.5])");
        assert_eq!(p("--x"), "(-(-x))");
    }

    #[test]
    fn columns_point_at_starts_and_operators() {
        let e = parse("a + (b * 2)").unwrap();
        let Kind::Binary { op_col, rhs, .. } = &e.kind else { panic!("not binary: {e:?}") };
        assert_eq!((e.col, *op_col, rhs.col), (1, 3, 5));
    }

    #[test]
    fn syntax_errors() {
        let err = |s| parse(s).unwrap_err();
        assert_eq!(err(""), Fault::new(1, "expected an expression, got end of input"));
        assert_eq!(err("1 +"), Fault::new(4, "expected an expression, got end of input"));
        assert_eq!(err("(1 + 2"), Fault::new(7, "expected `)`, got end of input"));
        assert_eq!(err("max(1 2)"), Fault::new(7, "expected `,` or `)`, got `2`"));
        assert_eq!(err("1 2"), Fault::new(3, "unexpected `2` after a complete expression"));
        assert_eq!(err("a < b < c").col, 7);
        assert!(err("a == b != c").message.contains("cannot be chained"));
        assert_eq!(err("a * * b"), Fault::new(5, "expected an expression, got `*`"));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}1{}", "(-".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("nested more than 64"));
        let parens = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&parens).unwrap_err().message.contains("nested"));
        let nots = format!("{}x", "not ".repeat(100_000));
        assert!(parse(&nots).unwrap_err().message.contains("nested"));
        let long = vec!["x"; 200].join(" + ");
        assert!(parse(&long).unwrap_err().message.contains("nested"));
        let fine = vec!["x"; 40].join(" + ");
        assert!(parse(&fine).is_ok());
    }
}
