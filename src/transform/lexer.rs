use super::error::Fault;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Num(f64),
    Str(String),
    Ident,
    True,
    False,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Not,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token<'a> {
    pub tok: Tok,
    /// The source text, for names and for "got `...`" in messages.
    pub text: &'a str,
    /// 1-based, counted in characters so that it matches what an editor shows.
    pub col: usize,
}

impl Token<'_> {
    pub fn describe(&self) -> String {
        match self.tok {
            Tok::End => "end of input".to_owned(),
            _ => format!("`{}`", self.text),
        }
    }
}

pub(super) fn lex(src: &str) -> Result<Vec<Token<'_>>, Fault> {
    let mut lexer = Lexer { src, chars: src.char_indices().peekable(), col: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let end = token.tok == Tok::End;
        tokens.push(token);
        if end {
            return Ok(tokens);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    /// Column of the last character taken.
    col: usize,
}

impl<'a> Lexer<'a> {
    fn bump(&mut self) -> Option<(usize, char)> {
        let next = self.chars.next();
        if next.is_some() {
            self.col += 1;
        }
        next
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|&(_, c)| c)
    }

    fn offset(&mut self) -> usize {
        self.chars.peek().map_or(self.src.len(), |&(i, _)| i)
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.bump();
        }
        hit
    }

    fn next_token(&mut self) -> Result<Token<'a>, Fault> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let start = self.offset();
        let Some((_, c)) = self.bump() else {
            return Ok(Token { tok: Tok::End, text: "", col: self.col + 1 });
        };
        let col = self.col;
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '<' if self.eat('=') => Tok::Le,
            '<' => Tok::Lt,
            '>' if self.eat('=') => Tok::Ge,
            '>' => Tok::Gt,
            '=' if self.eat('=') => Tok::Eq,
            '!' if self.eat('=') => Tok::Ne,
            '!' => Tok::Not,
            '&' if self.eat('&') => Tok::And,
            '|' if self.eat('|') => Tok::Or,
            '=' => return Err(Fault::new(col, "unexpected `=`; use `==` to compare")),
            '&' => return Err(Fault::new(col, "unexpected `&`; use `and` or `&&`")),
            '|' => return Err(Fault::new(col, "unexpected `|`; use `or` or `||`")),
            '\'' | '"' => self.string(c, col)?,
            c if c.is_ascii_digit() || c == '.' => self.number(start, col)?,
            c if c.is_alphabetic() || c == '_' => self.word(start),
            c => return Err(Fault::new(col, format!("unexpected character `{c}`"))),
        };
        let end = self.offset();
        Ok(Token { tok, text: &self.src[start..end], col })
    }

    fn string(&mut self, quote: char, col: usize) -> Result<Tok, Fault> {
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(Fault::new(col, "string is not closed")),
                Some((_, c)) if c == quote => return Ok(Tok::Str(value)),
                Some((_, '\\')) => {
                    let Some((_, c @ ('\\' | '\'' | '"'))) = self.bump() else {
                        let message = "unknown escape in string; only \\\\, \\' and \\\" are allowed";
                        return Err(Fault::new(self.col, message));
                    };
                    value.push(c);
                }
                Some((_, c)) => value.push(c),
            }
        }
    }

    fn number(&mut self, start: usize, col: usize) -> Result<Tok, Fault> {
        self.take_while(|c| c.is_ascii_digit() || c == '.');
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            self.take_while(|c| c.is_ascii_digit());
        }
        // A letter glued to a number (`2x`, `1e`) is one bad token, not two good ones.
        self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let text = &self.src[start..self.offset()];
        match text.parse::<f64>() {
            Ok(v) if text.bytes().any(|b| b.is_ascii_digit()) => Ok(Tok::Num(v)),
            _ => Err(Fault::new(col, format!("invalid number `{text}`"))),
        }
    }

    fn word(&mut self, start: usize) -> Tok {
        self.take_while(|c| c.is_alphanumeric() || c == '_');
        match &self.src[start..self.offset()] {
            "and" => Tok::And,
            "or" => Tok::Or,
            "not" => Tok::Not,
            "true" => Tok::True,
            "false" => Tok::False,
            "nan" => Tok::Num(f64::NAN),
            _ => Tok::Ident,
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_in_every_spelling() {
        assert_eq!(
            toks("1 2.5 1e-3 .5 3E2"),
            [Tok::Num(1.0), Tok::Num(2.5), Tok::Num(0.001), Tok::Num(0.5), Tok::Num(300.0), Tok::End]
        );
        assert!(matches!(toks("nan")[0], Tok::Num(v) if v.is_nan()));
    }

    #[test]
    fn operators_and_keywords() {
        use Tok::*;
        assert_eq!(
            toks("< <= > >= == != && || ! and or not"),
            [Lt, Le, Gt, Ge, Eq, Ne, And, Or, Not, And, Or, Not, End]
        );
        assert_eq!(toks("true false x_1"), [True, False, Ident, End]);
    }

    #[test]
    fn strings_with_both_quotes_and_escapes() {
        assert_eq!(
            toks(r#"'a b' "c'd" 'it\'s'"#),
            [Tok::Str("a b".into()), Tok::Str("c'd".into()), Tok::Str("it's".into()), Tok::End]
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let tokens = lex("'é' + x").unwrap();
        assert_eq!(tokens[1].col, 5);
        assert_eq!(tokens[2].col, 7);
        assert_eq!(tokens[2].text, "x");
        assert_eq!(tokens[3].col, 8);
    }

    #[test]
    fn lexical_errors_point_at_the_culprit() {
        assert_eq!(lex("a = b").unwrap_err(), Fault::new(3, "unexpected `=`; use `==` to compare"));
        assert_eq!(lex("x $").unwrap_err(), Fault::new(3, "unexpected character `$`"));
        assert_eq!(lex("1 + 'abc").unwrap_err(), Fault::new(5, "string is not closed"));
        assert_eq!(lex("2x").unwrap_err(), Fault::new(1, "invalid number `2x`"));
        assert_eq!(lex("1.2.3").unwrap_err(), Fault::new(1, "invalid number `1.2.3`"));
        assert_eq!(lex(" . ").unwrap_err(), Fault::new(2, "invalid number `.`"));
        assert_eq!(lex("'a\\n'").unwrap_err().col, 4);
        assert_eq!(lex("a & b").unwrap_err().col, 3);
    }
}
