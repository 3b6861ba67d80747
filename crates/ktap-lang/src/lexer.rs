//! The lexer: script text to tokens, on demand, plus the raw mode the parser switches on for
//! the event definitions after `trace` and the period after `tick-` / `profile-`.
//!
//! The parser drives it: [`lex`] starts a [`Lexer`], [`Lexer::next_token`] yields ordinary tokens,
//! [`Lexer::event_part`] and [`Lexer::period`] read the raw text of a probe header, and
//! [`Lexer::seek`] moves back to where the parser wants to switch modes. Errors never stop the
//! lexer: each one is recorded as a [`Diagnostic`] and a best-effort token is returned, so the
//! parser can keep going and report more than one problem.

use crate::diag::Diagnostic;
use ktap_bpf::Span;

/// Starts lexing `text` at its beginning.
pub fn lex(text: &str) -> Lexer<'_> {
    Lexer {
        text,
        pos: 0,
        diags: Vec::new(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Name(String),
    Number(i64),
    /// String literal bytes after escapes.
    Str(Vec<u8>),
    // Keywords.
    Var,
    Function,
    If,
    Elseif,
    Else,
    While,
    For,
    In,
    Repeat,
    Until,
    Break,
    Return,
    Trace,
    TraceEnd,
    Tick,
    Profile,
    Nil,
    True,
    False,
    // Operators.
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    DotDot,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Bang,
    Assign,
    PlusAssign,
    /// `<<<`, the aggregation operator.
    LtLtLt,
    Amp,
    Pipe,
    Caret,
    Shl,
    Shr,
    Tilde,
    // Punctuation.
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Semi,
    Eof,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
    /// A line break (or the start of the script) comes between this token and the previous one.
    /// The parser uses it to place error carets and to resynchronise after an error.
    pub line_start: bool,
}

/// One piece of the raw text between `trace` and the `{` of its block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventPart<'a> {
    /// A run of characters up to white space, `,`, `{` or `}`: an event definition or a fetch-arg.
    Word(&'a str, Span),
    /// A `,` between event definitions.
    Comma(Span),
    /// A `/.../` filter: its text between the slashes, where that text is, and the whole span.
    Filter {
        text: &'a str,
        inner: Span,
        span: Span,
    },
    /// The `{` of the block is next (not consumed).
    Open,
    /// A `}` or the end of the script is next (not consumed): the header has no block.
    End,
}

/// Keywords of LANGUAGE.md section 1. Built-in variables and functions are ordinary names:
/// a script may shadow them.
fn keyword(word: &str) -> Option<TokenKind> {
    use TokenKind::*;
    Some(match word {
        "var" => Var,
        "function" => Function,
        "if" => If,
        "elseif" => Elseif,
        "else" => Else,
        "while" => While,
        "for" => For,
        "in" => In,
        "repeat" => Repeat,
        "until" => Until,
        "break" => Break,
        "return" => Return,
        "trace" => Trace,
        "trace_end" => TraceEnd,
        "tick" => Tick,
        "profile" => Profile,
        "nil" => Nil,
        "true" => True,
        "false" => False,
        _ => return None,
    })
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

pub struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next unread character; always on a character boundary.
    pos: usize,
    diags: Vec<Diagnostic>,
}

impl<'a> Lexer<'a> {
    /// Moves to byte offset `pos` (a token boundary the parser saw), so the next read starts there.
    pub fn seek(&mut self, pos: u32) {
        let pos = (pos as usize).min(self.text.len());
        if self.text.is_char_boundary(pos) {
            self.pos = pos;
        }
    }

    /// Byte offset of the next unread character.
    pub fn pos(&self) -> u32 {
        self.pos as u32
    }

    /// The errors found so far, leaving none behind.
    pub fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.diags)
    }

    fn peek_byte(&self, ahead: usize) -> u8 {
        self.text
            .as_bytes()
            .get(self.pos + ahead)
            .copied()
            .unwrap_or(0)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn span_from(&self, lo: usize) -> Span {
        Span::new(lo as u32, self.pos as u32)
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, message));
    }

    /// Skips the current character, whatever its UTF-8 length.
    fn skip_char(&mut self) {
        let len = self.text[self.pos..]
            .chars()
            .next()
            .map_or(1, char::len_utf8);
        self.pos += len;
    }

    fn skip_line(&mut self) {
        while !self.at_end() && self.peek_byte(0) != b'\n' {
            self.pos += 1;
        }
    }

    /// If a long bracket `[[`, `[=[`, `[==[` ... starts here, its level (the number of `=`).
    fn long_bracket_level(&self) -> Option<usize> {
        if self.peek_byte(0) != b'[' {
            return None;
        }
        let mut level = 0;
        while self.peek_byte(1 + level) == b'=' {
            level += 1;
        }
        (self.peek_byte(1 + level) == b'[').then_some(level)
    }

    /// Reads a long bracket body after its opening (already consumed) up to the matching close.
    /// Returns the body's range, or `None` (and leaves `pos` at the end) if it is unterminated.
    fn long_bracket_body(&mut self, level: usize) -> Option<(usize, usize)> {
        let start = self.pos;
        while !self.at_end() {
            if self.peek_byte(0) == b']' {
                let mut n = 0;
                while self.peek_byte(1 + n) == b'=' {
                    n += 1;
                }
                if n == level && self.peek_byte(1 + n) == b']' {
                    let end = self.pos;
                    self.pos += level + 2;
                    return Some((start, end));
                }
            }
            self.skip_char();
        }
        None
    }

    /// Skips white space and comments; says whether a line break was among them.
    fn skip_trivia(&mut self) -> bool {
        let mut newline = false;
        loop {
            match self.peek_byte(0) {
                b'\n' => {
                    newline = true;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c if !self.at_end() => self.pos += 1,
                // `#` comments also cover the `#!` interpreter line.
                b'#' => self.skip_line(),
                b'-' if self.peek_byte(1) == b'-' => {
                    let lo = self.pos;
                    self.pos += 2;
                    if let Some(level) = self.long_bracket_level() {
                        self.pos += level + 2;
                        match self.long_bracket_body(level) {
                            Some((body_lo, body_hi)) => {
                                newline |= self.text[body_lo..body_hi].contains('\n');
                            }
                            None => {
                                self.error(
                                    Span::new(lo as u32, lo as u32 + 4),
                                    "unterminated block comment",
                                );
                            }
                        }
                    } else {
                        self.skip_line();
                    }
                }
                _ => return newline,
            }
        }
    }

    /// The next ordinary token. At the end of the text it returns [`TokenKind::Eof`] forever.
    pub fn next_token(&mut self) -> Token {
        let at_start = self.pos == 0;
        let mut line_start = self.skip_trivia() || at_start;
        loop {
            let lo = self.pos;
            if let Some(kind) = self.token_kind() {
                return Token {
                    kind,
                    span: self.span_from(lo),
                    line_start,
                };
            }
            // An unusable character was reported and skipped; continue after it.
            line_start |= self.skip_trivia();
        }
    }

    /// Reads one token's kind, or reports and skips a character that starts none.
    fn token_kind(&mut self) -> Option<TokenKind> {
        use TokenKind::*;
        let lo = self.pos;
        if self.at_end() {
            return Some(Eof);
        }
        let c = self.peek_byte(0);
        if is_name_start(c) {
            while is_name_char(self.peek_byte(0)) {
                self.pos += 1;
            }
            let word = &self.text[lo..self.pos];
            return Some(keyword(word).unwrap_or_else(|| Name(word.to_string())));
        }
        if c.is_ascii_digit() {
            return Some(Number(self.number()));
        }
        if c == b'"' || c == b'\'' {
            return Some(Str(self.string(c)));
        }
        if let Some(level) = self.long_bracket_level() {
            return Some(Str(self.long_string(level)));
        }
        let two = (c, self.peek_byte(1));
        let (kind, len) = match two {
            (b'<', b'<') if self.peek_byte(2) == b'<' => (LtLtLt, 3),
            (b'<', b'<') => (Shl, 2),
            (b'>', b'>') => (Shr, 2),
            (b'<', b'=') => (Le, 2),
            (b'>', b'=') => (Ge, 2),
            (b'=', b'=') => (EqEq, 2),
            (b'!', b'=') => (NotEq, 2),
            (b'~', b'=') => {
                self.pos += 2;
                self.error(
                    self.span_from(lo),
                    "'~=' is Lua's 'not equal'; ktap writes '!='",
                );
                return Some(NotEq);
            }
            (b'&', b'&') => (AndAnd, 2),
            (b'|', b'|') => (OrOr, 2),
            (b'+', b'=') => (PlusAssign, 2),
            (b'.', b'.') if self.peek_byte(2) == b'.' => {
                self.pos += 3;
                self.error(
                    self.span_from(lo),
                    "'...' (variable arguments) is not supported",
                );
                return None;
            }
            (b'.', b'.') => (DotDot, 2),
            (b'+', _) => (Plus, 1),
            (b'-', _) => (Minus, 1),
            (b'*', _) => (Star, 1),
            (b'/', _) => (Slash, 1),
            (b'%', _) => (Percent, 1),
            (b'<', _) => (Lt, 1),
            (b'>', _) => (Gt, 1),
            (b'!', _) => (Bang, 1),
            (b'=', _) => (Assign, 1),
            (b'&', _) => (Amp, 1),
            (b'|', _) => (Pipe, 1),
            (b'^', _) => (Caret, 1),
            (b'~', _) => (Tilde, 1),
            (b'(', _) => (LParen, 1),
            (b')', _) => (RParen, 1),
            (b'{', _) => (LBrace, 1),
            (b'}', _) => (RBrace, 1),
            (b'[', _) => (LBracket, 1),
            (b']', _) => (RBracket, 1),
            (b',', _) => (Comma, 1),
            (b'.', _) => (Dot, 1),
            (b';', _) => (Semi, 1),
            _ => {
                self.skip_char();
                let ch = &self.text[lo..self.pos];
                self.error(self.span_from(lo), format!("unexpected character '{ch}'"));
                return None;
            }
        };
        self.pos += len;
        Some(kind)
    }

    /// A decimal or `0x` hexadecimal integer. Decimal literals must fit in an i64; hexadecimal
    /// ones may use all 64 bits and are read as two's complement, so `0xffffffffffffffff` is -1
    /// (masks are written that way). Anything larger is an error, and so is a letter glued to
    /// the digits or a fraction: numbers are integers.
    fn number(&mut self) -> i64 {
        let lo = self.pos;
        let hex = self.peek_byte(0) == b'0' && matches!(self.peek_byte(1), b'x' | b'X');
        let mut overflow = false;
        let mut value: i64 = 0;
        if hex {
            self.pos += 2;
            let digits_lo = self.pos;
            let mut bits: u64 = 0;
            while let Some(d) = (self.peek_byte(0) as char).to_digit(16) {
                overflow |= bits >> 60 != 0;
                bits = bits.wrapping_shl(4) | u64::from(d);
                self.pos += 1;
            }
            if self.pos == digits_lo {
                self.skip_name_chars();
                let text = &self.text[lo..self.pos];
                self.error(self.span_from(lo), format!("malformed number '{text}'"));
                return 0;
            }
            value = bits as i64;
        } else {
            while let Some(d) = (self.peek_byte(0) as char).to_digit(10) {
                match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i64::from(d)))
                {
                    Some(v) => value = v,
                    None => overflow = true,
                }
                self.pos += 1;
            }
        }
        if is_name_char(self.peek_byte(0)) {
            self.skip_name_chars();
            let text = &self.text[lo..self.pos];
            self.error(self.span_from(lo), format!("malformed number '{text}'"));
            return 0;
        }
        if !hex && self.peek_byte(0) == b'.' && self.peek_byte(1).is_ascii_digit() {
            self.pos += 1;
            self.skip_name_chars();
            let text = &self.text[lo..self.pos];
            self.error(
                self.span_from(lo),
                format!("numbers are integers: '{text}' is not supported"),
            );
            return 0;
        }
        if overflow {
            let text = &self.text[lo..self.pos];
            let what = if hex {
                "does not fit in 64 bits"
            } else {
                "does not fit in a signed 64-bit integer"
            };
            self.error(self.span_from(lo), format!("number '{text}' {what}"));
            return 0;
        }
        value
    }

    fn skip_name_chars(&mut self) {
        while is_name_char(self.peek_byte(0)) {
            self.pos += 1;
        }
    }

    /// A quoted string after its opening `quote`. It ends at the matching quote; a line break or
    /// the end of the script first is an error, and the text read so far is the token.
    fn string(&mut self, quote: u8) -> Vec<u8> {
        let lo = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek_byte(0);
            if self.at_end() || c == b'\n' {
                self.error(self.span_from(lo), "unterminated string");
                return out;
            }
            self.pos += 1;
            if c == quote {
                return out;
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let esc_lo = self.pos - 1;
            let e = self.peek_byte(0);
            if self.at_end() {
                continue;
            }
            let simple = match e {
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'a' => Some(0x07),
                b'b' => Some(0x08),
                b'f' => Some(0x0c),
                b'v' => Some(0x0b),
                b'\\' => Some(b'\\'),
                b'"' => Some(b'"'),
                b'\'' => Some(b'\''),
                // A backslash before a line break continues the string on the next line, as Lua.
                b'\n' => Some(b'\n'),
                b'\r' if self.peek_byte(1) == b'\n' => {
                    self.pos += 1;
                    Some(b'\n')
                }
                _ => None,
            };
            if let Some(byte) = simple {
                self.pos += 1;
                out.push(byte);
            } else if e == b'x' {
                self.pos += 1;
                let hi = (self.peek_byte(0) as char).to_digit(16);
                let lo_digit = (self.peek_byte(1) as char).to_digit(16);
                match (hi, lo_digit) {
                    (Some(h), Some(l)) => {
                        self.pos += 2;
                        out.push((h * 16 + l) as u8);
                    }
                    _ => self.error(
                        self.span_from(esc_lo),
                        "'\\x' must be followed by two hexadecimal digits",
                    ),
                }
            } else if e.is_ascii_digit() {
                let mut v: u32 = 0;
                let mut n = 0;
                while n < 3 && self.peek_byte(0).is_ascii_digit() {
                    v = v * 10 + u32::from(self.peek_byte(0) - b'0');
                    self.pos += 1;
                    n += 1;
                }
                match u8::try_from(v) {
                    Ok(byte) => out.push(byte),
                    Err(_) => self.error(
                        self.span_from(esc_lo),
                        format!("escape '\\{v}' is larger than 255"),
                    ),
                }
            } else {
                self.skip_char();
                let seq = &self.text[esc_lo..self.pos];
                self.error(
                    self.span_from(esc_lo),
                    format!("invalid escape sequence '{seq}'"),
                );
            }
        }
    }

    /// A `[[ ... ]]` string (any level): no escapes, and a line break right after the opening
    /// bracket is not part of the string, as in Lua.
    fn long_string(&mut self, level: usize) -> Vec<u8> {
        let lo = self.pos;
        self.pos += level + 2;
        if self.peek_byte(0) == b'\r' && self.peek_byte(1) == b'\n' {
            self.pos += 2;
        } else if self.peek_byte(0) == b'\n' {
            self.pos += 1;
        }
        match self.long_bracket_body(level) {
            Some((body_lo, body_hi)) => self.text.as_bytes()[body_lo..body_hi].to_vec(),
            None => {
                self.error(
                    Span::new(lo as u32, (lo + level + 2) as u32),
                    "unterminated long string",
                );
                Vec::new()
            }
        }
    }

    /// Raw mode for a `trace` header: the next word, comma, filter, or what ends the header.
    /// White space and comments between parts are skipped.
    pub fn event_part(&mut self) -> EventPart<'a> {
        self.skip_trivia();
        let lo = self.pos;
        match self.peek_byte(0) {
            _ if self.at_end() => EventPart::End,
            b'{' => EventPart::Open,
            b'}' => EventPart::End,
            b',' => {
                self.pos += 1;
                EventPart::Comma(self.span_from(lo))
            }
            b'/' => self.filter(),
            _ => {
                while !self.at_end() {
                    let c = self.peek_byte(0);
                    if c.is_ascii_whitespace() || matches!(c, b',' | b'{' | b'}') {
                        break;
                    }
                    self.skip_char();
                }
                EventPart::Word(&self.text[lo..self.pos], self.span_from(lo))
            }
        }
    }

    /// A `/.../` filter. Slashes inside quoted strings do not end it; a `{` outside quotes or the
    /// end of the script does, with an error, so a forgotten slash still leaves the block parsable.
    fn filter(&mut self) -> EventPart<'a> {
        let lo = self.pos;
        self.pos += 1;
        let inner_lo = self.pos;
        let mut quote = None;
        loop {
            let c = self.peek_byte(0);
            if self.at_end() || (quote.is_none() && c == b'{') {
                self.error(
                    Span::new(lo as u32, lo as u32 + 1),
                    "unterminated filter: missing the closing '/'",
                );
                return EventPart::Filter {
                    text: &self.text[inner_lo..self.pos],
                    inner: self.span_from(inner_lo),
                    span: self.span_from(lo),
                };
            }
            match (quote, c) {
                (None, b'/') => break,
                (None, b'"' | b'\'') => quote = Some(c),
                (Some(q), _) if q == c => quote = None,
                _ => {}
            }
            self.skip_char();
        }
        let inner = self.span_from(inner_lo);
        let text = &self.text[inner_lo..self.pos];
        self.pos += 1;
        EventPart::Filter {
            text,
            inner,
            span: self.span_from(lo),
        }
    }

    /// Raw mode after `tick` / `profile`: `-N<unit>` with optional blanks around the `-`.
    /// Returns the `N<unit>` text and its span (empty if nothing follows the `-`), or `None`
    /// (consuming nothing but blanks) if there is no `-`.
    pub fn period(&mut self) -> Option<(&'a str, Span)> {
        self.skip_blanks();
        if self.peek_byte(0) != b'-' {
            return None;
        }
        self.pos += 1;
        self.skip_blanks();
        let lo = self.pos;
        self.skip_name_chars();
        Some((&self.text[lo..self.pos], self.span_from(lo)))
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek_byte(0), b' ' | b'\t') {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenKind::*;
    use super::*;

    /// All ordinary tokens of `text` (without the final Eof) and the error messages.
    fn tokens(text: &str) -> (Vec<TokenKind>, Vec<String>) {
        let mut lx = lex(text);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token();
            if t.kind == Eof {
                break;
            }
            out.push(t.kind);
        }
        let msgs = lx
            .take_diagnostics()
            .into_iter()
            .map(|d| d.message)
            .collect();
        (out, msgs)
    }

    fn ok(text: &str) -> Vec<TokenKind> {
        let (toks, msgs) = tokens(text);
        assert!(msgs.is_empty(), "{text:?}: {msgs:?}");
        toks
    }

    fn one_error(text: &str) -> String {
        let (_, msgs) = tokens(text);
        assert_eq!(msgs.len(), 1, "{text:?}: {msgs:?}");
        msgs[0].clone()
    }

    fn s(bytes: &[u8]) -> TokenKind {
        Str(bytes.to_vec())
    }

    #[test]
    fn escapes() {
        assert_eq!(
            ok(r#""a\n\t\r\a\b\f\v\\\"\'z""#),
            vec![s(b"a\n\t\r\x07\x08\x0c\x0b\\\"'z")]
        );
        assert_eq!(ok(r"'\x41\x7a\x00'"), vec![s(b"Az\0")]);
        assert_eq!(ok(r#""\65\0669\255""#), vec![s(b"AB9\xff")]);
        assert_eq!(ok("'it''s'"), vec![s(b"it"), s(b"s")]);
        assert_eq!(ok("\"a\\\nb\""), vec![s(b"a\nb")]);
        assert_eq!(ok(r#""single ' inside""#), vec![s(b"single ' inside")]);
        assert_eq!(one_error(r#""\q""#), "invalid escape sequence '\\q'");
        assert_eq!(one_error(r#""\256""#), "escape '\\256' is larger than 255");
        assert_eq!(
            one_error(r#""\xg1""#),
            "'\\x' must be followed by two hexadecimal digits"
        );
    }

    #[test]
    fn unterminated_strings() {
        let (toks, msgs) = tokens("x = \"abc\ny");
        assert_eq!(msgs, vec!["unterminated string"]);
        assert_eq!(
            toks,
            vec![Name("x".into()), Assign, s(b"abc"), Name("y".into())]
        );
        assert_eq!(one_error("'abc"), "unterminated string");
        assert_eq!(one_error("[[abc"), "unterminated long string");
        assert_eq!(one_error("--[[ never closed"), "unterminated block comment");
    }

    #[test]
    fn long_strings() {
        assert_eq!(ok("[[a\\nb]]"), vec![s(b"a\\nb")]);
        assert_eq!(ok("[[\nfirst\nsecond]]"), vec![s(b"first\nsecond")]);
        assert_eq!(ok("[==[a]]b]=]c]==]"), vec![s(b"a]]b]=]c")]);
        assert_eq!(
            ok("t[i]"),
            vec![Name("t".into()), LBracket, Name("i".into()), RBracket]
        );
        assert_eq!(
            ok("a[b[c]]"),
            vec![
                Name("a".into()),
                LBracket,
                Name("b".into()),
                LBracket,
                Name("c".into()),
                RBracket,
                RBracket
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            ok("0 42 0x10 0XfF"),
            vec![Number(0), Number(42), Number(16), Number(255)]
        );
        assert_eq!(ok("9223372036854775807"), vec![Number(i64::MAX)]);
        assert_eq!(ok("0x7fffffffffffffff"), vec![Number(i64::MAX)]);
        assert_eq!(ok("0xffffffffffffffff"), vec![Number(-1)]);
        assert_eq!(ok("0x0000000000000000001"), vec![Number(1)]);
        assert_eq!(
            one_error("9223372036854775808"),
            "number '9223372036854775808' does not fit in a signed 64-bit integer"
        );
        assert_eq!(
            one_error("0x10000000000000000"),
            "number '0x10000000000000000' does not fit in 64 bits"
        );
        assert_eq!(one_error("12ab"), "malformed number '12ab'");
        assert_eq!(one_error("0x"), "malformed number '0x'");
        assert_eq!(one_error("0xfg"), "malformed number '0xfg'");
        assert_eq!(
            one_error("1.5"),
            "numbers are integers: '1.5' is not supported"
        );
        assert_eq!(ok("1..2"), vec![Number(1), DotDot, Number(2)]);
    }

    #[test]
    fn comments() {
        assert_eq!(ok("#!/usr/bin/env ktap\nx"), vec![Name("x".into())]);
        assert_eq!(
            ok("a # c\nb -- c\nc"),
            vec![Name("a".into()), Name("b".into()), Name("c".into())]
        );
        assert_eq!(
            ok("a --[[ x\n y ]] b"),
            vec![Name("a".into()), Name("b".into())]
        );
        assert_eq!(
            ok("a --[==[ ]] ]==] b"),
            vec![Name("a".into()), Name("b".into())]
        );
        assert_eq!(
            ok("a --[ not a block\nb"),
            vec![Name("a".into()), Name("b".into())]
        );
        assert_eq!(
            ok("a - -b"),
            vec![Name("a".into()), Minus, Minus, Name("b".into())]
        );
    }

    #[test]
    fn line_starts() {
        let mut lx = lex("a b --[[\n]] c\n# x\nd");
        let starts: Vec<bool> = (0..4).map(|_| lx.next_token().line_start).collect();
        assert_eq!(starts, vec![true, false, true, true]);
    }

    #[test]
    fn operators_and_keywords() {
        assert_eq!(
            ok("+ - * / % .. == != < <= > >= && || ! = += <<< & | ^ << >> ~ ( ) { } [ ] , . ;"),
            vec![
                Plus, Minus, Star, Slash, Percent, DotDot, EqEq, NotEq, Lt, Le, Gt, Ge, AndAnd,
                OrOr, Bang, Assign, PlusAssign, LtLtLt, Amp, Pipe, Caret, Shl, Shr, Tilde, LParen,
                RParen, LBrace, RBrace, LBracket, RBracket, Comma, Dot, Semi
            ]
        );
        assert_eq!(
            ok("var function if elseif else while for in repeat until break return trace trace_end tick profile nil true false pid"),
            vec![
                Var, Function, If, Elseif, Else, While, For, In, Repeat, Until, Break, Return,
                Trace, TraceEnd, Tick, Profile, Nil, True, False, Name("pid".into())
            ]
        );
        assert_eq!(
            ok("a<<<b"),
            vec![Name("a".into()), LtLtLt, Name("b".into())]
        );
        assert_eq!(
            one_error("a ~= b"),
            "'~=' is Lua's 'not equal'; ktap writes '!='"
        );
    }

    #[test]
    fn bad_characters_are_skipped() {
        let (toks, msgs) = tokens("a @ é b");
        assert_eq!(toks, vec![Name("a".into()), Name("b".into())]);
        assert_eq!(
            msgs,
            vec!["unexpected character '@'", "unexpected character 'é'"]
        );
    }

    #[test]
    fn spans() {
        let mut lx = lex("ab \"c\\n\" 0x1f");
        let spans: Vec<Span> = (0..3).map(|_| lx.next_token().span).collect();
        assert_eq!(
            spans,
            vec![Span::new(0, 2), Span::new(3, 8), Span::new(9, 13)]
        );
    }

    #[test]
    fn event_parts() {
        let text = " syscalls:sys_enter_*, probe:do_sys_open dfd=%di fname=+0(%si):string # c\n /pid == 1 && comm ~ \"a/b\"/ {";
        let mut lx = lex(text);
        let mut parts = Vec::new();
        loop {
            let p = lx.event_part();
            if matches!(p, EventPart::Open | EventPart::End) {
                parts.push(p);
                break;
            }
            parts.push(p);
        }
        let words: Vec<String> = parts
            .iter()
            .map(|p| match p {
                EventPart::Word(w, _) => format!("w:{w}"),
                EventPart::Comma(_) => ",".into(),
                EventPart::Filter { text, .. } => format!("f:{text}"),
                EventPart::Open => "{".into(),
                EventPart::End => "end".into(),
            })
            .collect();
        assert_eq!(
            words,
            vec![
                "w:syscalls:sys_enter_*",
                ",",
                "w:probe:do_sys_open",
                "w:dfd=%di",
                "w:fname=+0(%si):string",
                "f:pid == 1 && comm ~ \"a/b\"",
                "{"
            ]
        );
        assert_eq!(lx.next_token().kind, LBrace);
    }

    #[test]
    fn unterminated_filter() {
        let mut lx = lex("/ip==vfs_* { x }");
        assert!(matches!(
            lx.event_part(),
            EventPart::Filter {
                text: "ip==vfs_* ",
                ..
            }
        ));
        assert_eq!(lx.event_part(), EventPart::Open);
        let msgs: Vec<String> = lx
            .take_diagnostics()
            .into_iter()
            .map(|d| d.message)
            .collect();
        assert_eq!(msgs, vec!["unterminated filter: missing the closing '/'"]);
    }

    #[test]
    fn periods() {
        let mut lx = lex("-5s {");
        assert_eq!(lx.period(), Some(("5s", Span::new(1, 3))));
        let mut lx = lex(" - 10msec{");
        assert_eq!(lx.period(), Some(("10msec", Span::new(3, 9))));
        let mut lx = lex(" {");
        assert_eq!(lx.period(), None);
    }
}
