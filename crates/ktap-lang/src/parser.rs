//! The parser: tokens to the syntax tree of [`crate::ast`], by recursive descent, with error
//! recovery at statement and block boundaries so one run reports several errors.
//!
//! The entry is [`parse`]. Probe headers (`trace ...`, `tick-5s`) are read through the lexer's
//! raw mode and parsed here into [`EventDef`]s, [`FetchArg`]s, the [`Filter`] and the [`Period`].

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::lexer::{lex, EventPart, Lexer, Token, TokenKind};
use ktap_bpf::{Source, Span};

/// Parsing stops after this many errors: later ones are mostly consequences of earlier ones.
const MAX_ERRORS: usize = 20;

/// How deeply blocks and expressions may nest. Real scripts stay far below; the limit keeps a
/// hostile input from exhausting the stack.
const MAX_DEPTH: u32 = 200;

const TOO_DEEP: &str =
    "too deeply nested (more than 200 levels of blocks, parentheses or operators)";

/// Parses a whole script. On failure, returns every error found (at most 20), in
/// source order.
pub fn parse(source: &Source) -> Result<Script, Vec<Diagnostic>> {
    if u32::try_from(source.text.len()).is_err() {
        return Err(vec![Diagnostic::error(
            Span::default(),
            "script too large (more than 4 GiB)",
        )]);
    }
    let mut p = Parser::new(source);
    let items = p.script();
    let mut diags = p.diags;
    if diags.is_empty() {
        return Ok(Script { items });
    }
    diags.sort_by_key(|d| d.span.lo);
    diags.dedup();
    diags.truncate(MAX_ERRORS);
    Err(diags)
}

/// Marks that an error was recorded and the current construct was abandoned; the caller
/// resynchronises.
struct Stop;

type PResult<T> = Result<T, Stop>;

/// Binary operators with their left and right binding powers (LANGUAGE.md section 1).
/// Left-associative operators bind equally on both sides; `..` binds less on the right,
/// which makes it right-associative.
fn binary_op(kind: &TokenKind) -> Option<(BinOp, u8, u8)> {
    use TokenKind as T;
    Some(match kind {
        T::OrOr => (BinOp::Or, 1, 1),
        T::AndAnd => (BinOp::And, 2, 2),
        T::EqEq => (BinOp::Eq, 3, 3),
        T::NotEq => (BinOp::Ne, 3, 3),
        T::Lt => (BinOp::Lt, 3, 3),
        T::Le => (BinOp::Le, 3, 3),
        T::Gt => (BinOp::Gt, 3, 3),
        T::Ge => (BinOp::Ge, 3, 3),
        T::Pipe => (BinOp::BitOr, 4, 4),
        T::Caret => (BinOp::BitXor, 5, 5),
        T::Amp => (BinOp::BitAnd, 6, 6),
        T::Shl => (BinOp::Shl, 7, 7),
        T::Shr => (BinOp::Shr, 7, 7),
        T::DotDot => (BinOp::Concat, 9, 8),
        T::Plus => (BinOp::Add, 10, 10),
        T::Minus => (BinOp::Sub, 10, 10),
        T::Star => (BinOp::Mul, 11, 11),
        T::Slash => (BinOp::Div, 11, 11),
        T::Percent => (BinOp::Mod, 11, 11),
        _ => return None,
    })
}

/// Unary operators bind tighter than every binary one.
const UNARY_POWER: u8 = 12;

/// Keywords that begin a statement or a probe block: recovery stops in front of them.
fn starts_statement(kind: &TokenKind) -> bool {
    use TokenKind as T;
    matches!(
        kind,
        T::Var
            | T::Function
            | T::If
            | T::While
            | T::For
            | T::Repeat
            | T::Break
            | T::Return
            | T::Trace
            | T::TraceEnd
            | T::Tick
            | T::Profile
    )
}

fn is_probe_keyword(kind: &TokenKind) -> bool {
    use TokenKind as T;
    matches!(kind, T::Trace | T::TraceEnd | T::Tick | T::Profile)
}

struct Parser<'a> {
    source: &'a Source,
    lx: Lexer<'a>,
    tok: Token,
    /// One token of lookahead beyond `tok`, for `name = value` in table constructors.
    peeked: Option<Token>,
    /// End of the previous token, where a missing `)` or `}` belongs.
    prev_hi: u32,
    diags: Vec<Diagnostic>,
    next_id: ExprId,
    depth: u32,
    /// Drop lexical errors while skipping text after an error (see [`Parser::sync`]).
    quiet: bool,
    /// Table constructors being parsed, and how many were open at the last error: recovery
    /// skips to their closing braces, which do not end a block.
    tables_open: u32,
    tables_at_error: u32,
}

impl<'a> Parser<'a> {
    fn new(source: &'a Source) -> Parser<'a> {
        let mut lx = lex(&source.text);
        let tok = lx.next_token();
        let diags = lx.take_diagnostics();
        Parser {
            source,
            lx,
            tok,
            peeked: None,
            prev_hi: 0,
            diags,
            next_id: 0,
            depth: 0,
            quiet: false,
            tables_open: 0,
            tables_at_error: 0,
        }
    }

    // ---- tokens -------------------------------------------------------------------------

    fn lex_next(&mut self) -> Token {
        let t = self.lx.next_token();
        let diags = self.lx.take_diagnostics();
        if !self.quiet {
            self.diags.extend(diags);
        }
        t
    }

    /// Consumes the current token and returns it.
    fn bump(&mut self) -> Token {
        let next = match self.peeked.take() {
            Some(t) => t,
            None => self.lex_next(),
        };
        self.prev_hi = self.tok.span.hi;
        std::mem::replace(&mut self.tok, next)
    }

    fn peek(&mut self) -> &Token {
        if self.peeked.is_none() {
            let t = self.lex_next();
            self.peeked = Some(t);
        }
        self.peeked.as_ref().unwrap_or(&self.tok)
    }

    fn at(&self, kind: &TokenKind) -> bool {
        &self.tok.kind == kind
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.at(kind) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Switches the lexer to raw mode right after the current token (a probe keyword).
    fn enter_raw(&mut self) {
        self.peeked = None;
        self.lx.seek(self.tok.span.hi);
    }

    /// Back to ordinary tokens from wherever raw mode stopped.
    fn leave_raw(&mut self) {
        self.prev_hi = self.lx.pos();
        self.tok = self.lex_next();
    }

    /// How the current token is named in a message.
    fn describe(&self) -> String {
        describe_token(&self.tok, &self.source.text)
    }

    // ---- errors -------------------------------------------------------------------------

    fn too_many(&self) -> bool {
        self.diags.len() >= MAX_ERRORS
    }

    fn error(&mut self, span: Span, message: impl Into<String>) -> Stop {
        self.diags.push(Diagnostic::error(span, message));
        self.tables_at_error = self.tables_open;
        Stop
    }

    /// Where to point when something is missing before the current token: at the token, unless
    /// it starts a new line, in which case just after the previous token.
    fn missing_here(&self) -> Span {
        if self.tok.line_start && self.prev_hi > 0 {
            Span::new(self.prev_hi, self.prev_hi)
        } else {
            self.tok.span
        }
    }

    fn error_expected(&mut self, what: &str) -> Stop {
        let found = self.describe();
        let span = self.missing_here();
        self.error(span, format!("expected {what}, found {found}"))
    }

    /// `line:col` of an opening delimiter, for "to close '(' at 3:9".
    fn at_pos(&self, span: Span) -> String {
        let (line, col) = self.source.line_col(span.lo);
        format!("{line}:{col}")
    }

    /// Consumes the closing delimiter `close` of `open`, or reports it missing.
    fn close(&mut self, close: TokenKind, open: &Token) -> PResult<Token> {
        if self.at(&close) {
            return Ok(self.bump());
        }
        let (c, o) = match close {
            TokenKind::RParen => (")", "("),
            TokenKind::RBracket => ("]", "["),
            _ => ("}", "{"),
        };
        let message = format!(
            "expected '{c}' to close '{o}' at {}",
            self.at_pos(open.span)
        );
        let span = self.missing_here();
        Err(self.error(span, message))
    }

    /// Skips tokens after an error until a likely statement start: a statement keyword, a `;`
    /// (consumed), a `}` or a token at the start of a line, outside any braces opened while
    /// skipping and outside the table constructors the error left open. `start` is where the
    /// failed construct began; at least one token is skipped if the parser has not moved
    /// since, so recovery always makes progress.
    fn sync(&mut self, start: u32) {
        if self.tok.span.lo == start && !self.at(&TokenKind::Eof) {
            self.bump();
        }
        let mut depth = std::mem::take(&mut self.tables_at_error);
        loop {
            match self.tok.kind {
                TokenKind::Eof => break,
                TokenKind::LBrace => depth += 1,
                TokenKind::RBrace if depth == 0 => break,
                TokenKind::RBrace => depth -= 1,
                TokenKind::Semi if depth == 0 => {
                    self.bump();
                    break;
                }
                ref k if depth == 0 && (starts_statement(k) || self.tok.line_start) => break,
                _ => {}
            }
            // Inside skipped braces, lexical errors are not reported: that text may be a probe
            // header read as ordinary tokens (`$retval`, `%return`), and none of it is parsed.
            self.quiet = depth > 0;
            self.bump();
        }
        self.quiet = false;
    }

    /// Runs `f` one nesting level deeper, refusing to go beyond [`MAX_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        let saved = self.depth;
        let r = self.deeper().and_then(|()| f(self));
        self.depth = saved;
        r
    }

    fn expr_node(&mut self, kind: ExprKind, span: Span) -> Expr {
        let id = self.next_id;
        self.next_id += 1;
        Expr { id, kind, span }
    }

    fn ident(&mut self, what: &str) -> PResult<Ident> {
        if let TokenKind::Name(name) = &self.tok.kind {
            let ident = Ident {
                name: name.clone(),
                span: self.tok.span,
            };
            self.bump();
            Ok(ident)
        } else {
            Err(self.error_expected(what))
        }
    }

    /// A field name after `.`: a name, or a keyword (tracepoints have fields called
    /// `function`, as `timer:hrtimer_start`'s `args.function`).
    fn field_ident(&mut self) -> PResult<Ident> {
        if let TokenKind::Name(_) = self.tok.kind {
            return self.ident("a field name after '.'");
        }
        let span = self.tok.span;
        let word = self
            .source
            .text
            .get(span.lo as usize..span.hi as usize)
            .unwrap_or_default();
        let is_word = word
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !is_word {
            return Err(self.error_expected("a field name after '.'"));
        }
        let name = word.to_string();
        self.bump();
        Ok(Ident { name, span })
    }

    // ---- top level ----------------------------------------------------------------------

    fn script(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        loop {
            while self.eat(&TokenKind::Semi) {}
            if self.too_many() {
                break;
            }
            match self.tok.kind {
                TokenKind::Eof => break,
                TokenKind::RBrace => {
                    let span = self.tok.span;
                    self.error(span, "unexpected '}': no block is open here");
                    self.bump();
                }
                _ => {
                    let start = self.tok.span.lo;
                    match self.item() {
                        Ok(item) => items.push(item),
                        Err(Stop) => self.sync(start),
                    }
                }
            }
        }
        items
    }

    fn item(&mut self) -> PResult<Item> {
        match self.tok.kind {
            TokenKind::Trace => self.trace().map(Item::Trace),
            TokenKind::TraceEnd => {
                let kw = self.bump();
                let body = self.block("after 'trace_end'")?;
                let span = kw.span.to(body.span);
                Ok(Item::TraceEnd { body, span })
            }
            TokenKind::Tick | TokenKind::Profile => {
                let tick = self.at(&TokenKind::Tick);
                let (period, body, span) = self.timer()?;
                Ok(if tick {
                    Item::Tick { period, body, span }
                } else {
                    Item::Profile { period, body, span }
                })
            }
            _ => self.stmt().map(Item::Stmt),
        }
    }

    /// `tick-N<unit> { }` / `profile-N<unit> { }`, from the keyword.
    fn timer(&mut self) -> PResult<(Period, Block, Span)> {
        let kw_name = if self.at(&TokenKind::Tick) {
            "tick"
        } else {
            "profile"
        };
        let kw = self.tok.span;
        self.enter_raw();
        let mut written = String::new();
        let period = match self.lx.period() {
            None => {
                let at = self.lx.pos();
                self.error(
                    Span::new(at, at),
                    format!("expected '-' and a period after '{kw_name}', as in '{kw_name}-5s'"),
                );
                Period {
                    ns: 0,
                    span: Span::new(kw.hi, kw.hi),
                }
            }
            Some((text, span)) => {
                written = format!("-{text}");
                Period {
                    ns: self.period_ns(kw_name, text, span).unwrap_or(0),
                    span,
                }
            }
        };
        self.leave_raw();
        let body = self.block(&format!("after '{kw_name}{written}'"))?;
        let span = kw.to(body.span);
        Ok((period, body, span))
    }

    /// The nanoseconds of `N<unit>`; reports what is wrong with it otherwise.
    fn period_ns(&mut self, kw: &str, text: &str, span: Span) -> Option<u64> {
        const UNITS: &str = "expected s, sec, ms, msec, us or usec";
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        if number.is_empty() {
            self.error(
                span,
                format!("expected a number after '{kw}-', as in '{kw}-5s'"),
            );
            return None;
        }
        let scale: u64 = match unit {
            "s" | "sec" => 1_000_000_000,
            "ms" | "msec" => 1_000_000,
            "us" | "usec" => 1_000,
            "" => {
                self.error(
                    span,
                    format!("missing time unit after '{kw}-{number}' ({UNITS})"),
                );
                return None;
            }
            _ => {
                let unit_span = Span::new(span.lo + digits as u32, span.hi);
                self.error(unit_span, format!("unknown time unit '{unit}' ({UNITS})"));
                return None;
            }
        };
        match number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
        {
            Some(0) => {
                self.error(span, "the period must be greater than zero");
                None
            }
            Some(ns) => Some(ns),
            None => {
                self.error(span, "period too large");
                None
            }
        }
    }

    /// `trace EVENTDEF {, EVENTDEF} [/FILTER/] { block }`, from the keyword.
    fn trace(&mut self) -> PResult<Trace> {
        #[derive(PartialEq)]
        enum Want {
            Event,
            AfterEvent,
            AfterFilter,
        }
        let kw = self.tok.span;
        self.enter_raw();
        let mut events: Vec<EventDef> = Vec::new();
        let mut filter = None;
        let mut want = Want::Event;
        let mut last_comma = None;
        // After the first error in a header the rest of it is skipped silently: one bad word
        // usually makes everything after it meaningless.
        let mut failed = false;
        let open = loop {
            let part = self.lx.event_part();
            self.diags.extend(self.lx.take_diagnostics());
            if failed && !matches!(part, EventPart::Open | EventPart::End) {
                continue;
            }
            match part {
                EventPart::Open => break true,
                EventPart::End => break false,
                EventPart::Word(word, span) => match want {
                    Want::Event => match self.event_def(word, span) {
                        Some(ev) => {
                            events.push(ev);
                            want = Want::AfterEvent;
                        }
                        None => failed = true,
                    },
                    Want::AfterEvent if word.contains('=') => {
                        if let Some(mut ev) = events.pop() {
                            match self.fetch_arg(word, span, &ev) {
                                Some(arg) => ev.fetch_args.push(arg),
                                None => failed = true,
                            }
                            events.push(ev);
                        }
                    }
                    Want::AfterEvent => {
                        self.error(
                            span,
                            format!("expected ',', a filter or '{{' after the event definition, found '{word}'"),
                        );
                        failed = true;
                    }
                    Want::AfterFilter => {
                        self.error(
                            span,
                            format!("expected '{{' after the filter, found '{word}'"),
                        );
                        failed = true;
                    }
                },
                EventPart::Comma(span) => {
                    if want == Want::AfterEvent {
                        want = Want::Event;
                        last_comma = Some(span);
                    } else {
                        let message = if want == Want::AfterFilter {
                            "expected '{' after the filter, found ','"
                        } else {
                            "expected an event definition before ','"
                        };
                        self.error(span, message);
                        failed = true;
                    }
                }
                EventPart::Filter { text, inner, span } => match want {
                    Want::AfterEvent => {
                        filter = self.filter(text, inner, span);
                        failed = filter.is_none();
                        want = Want::AfterFilter;
                    }
                    Want::Event => {
                        let message = if events.is_empty() {
                            "expected an event definition before the filter"
                        } else {
                            "expected an event definition after ','"
                        };
                        self.error(span, message);
                        failed = true;
                    }
                    Want::AfterFilter => {
                        self.error(span, "only one filter is allowed");
                        failed = true;
                    }
                },
            }
        };
        if !failed {
            if events.is_empty() {
                let at = self.lx.pos();
                self.error(
                    Span::new(kw.hi, at.max(kw.hi)),
                    "expected an event definition after 'trace', as in 'trace syscalls:sys_enter_open'",
                );
            } else if want == Want::Event {
                if let Some(span) = last_comma {
                    self.error(span, "expected an event definition after ','");
                }
            } else if !open {
                let at = self.lx.pos();
                self.error(
                    Span::new(at, at),
                    "expected '{' to start the block of 'trace'",
                );
            }
        }
        self.leave_raw();
        if !open {
            // At top level, a `}` that ends the header most likely closes the block whose `{`
            // is missing; taking it avoids a second, confusing error. Inside a block (a
            // misplaced `trace`, already reported) it may be that block's own `}`.
            if self.depth == 0 {
                self.eat(&TokenKind::RBrace);
            }
            return Err(Stop);
        }
        let body = self.block("after the event definitions")?;
        Ok(Trace {
            events,
            filter,
            span: kw.to(body.span),
            body,
        })
    }

    // ---- event definitions --------------------------------------------------------------

    /// One EVENTDEF word; reports and returns `None` if it is not one.
    fn event_def(&mut self, word: &str, span: Span) -> Option<EventDef> {
        let Some(colon) = word.find(':') else {
            self.error(
                span,
                format!("invalid event definition '{word}' (expected SUBSYS:EVENT, probe:SYMBOL, sdt:/path:NAME or ftrace:function)"),
            );
            return None;
        };
        let (prefix, rest) = (&word[..colon], &word[colon + 1..]);
        let rest_lo = span.lo + colon as u32 + 1;
        let kind = match prefix {
            "probe" => self.probe(rest, rest_lo, span)?,
            "sdt" => {
                let split = rest.rfind(':').filter(|&c| c > 0 && c + 1 < rest.len());
                let Some(c) = split else {
                    self.error(
                        span,
                        format!("invalid USDT event '{word}' (expected sdt:/path/to/elf:NAME)"),
                    );
                    return None;
                };
                EventKind::Sdt {
                    path: rest[..c].to_string(),
                    name: rest[c + 1..].to_string(),
                }
            }
            "ftrace" => {
                if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    self.error(
                        span,
                        format!("invalid ftrace event '{word}' (expected ftrace:function)"),
                    );
                    return None;
                }
                EventKind::Ftrace {
                    tracer: rest.to_string(),
                }
            }
            _ => {
                let ok = |s: &str| {
                    !s.is_empty()
                        && s.bytes().all(|b| {
                            b.is_ascii_alphanumeric()
                                || matches!(b, b'_' | b'*' | b'?' | b'-' | b'.')
                        })
                };
                if !ok(prefix) || !ok(rest) {
                    self.error(
                        span,
                        format!("invalid event definition '{word}' (expected SUBSYS:EVENT, probe:SYMBOL, sdt:/path:NAME or ftrace:function)"),
                    );
                    return None;
                }
                EventKind::Tracepoint {
                    category: prefix.to_string(),
                    name: rest.to_string(),
                }
            }
        };
        Some(EventDef {
            kind,
            fetch_args: Vec::new(),
            text: word.to_string(),
            span,
        })
    }

    /// What follows `probe:`: a kprobe `SYMBOL[+OFF][%return]` or a uprobe
    /// `/path:SYMBOL[+OFF][%return]` / `/path:0xADDR[%return]`. A uprobe is recognised by the
    /// `/` in the part before the last `:`, since kernel symbols never contain one.
    fn probe(&mut self, rest: &str, rest_lo: u32, span: Span) -> Option<EventKind> {
        let (body, ret) = match rest.find('%') {
            Some(i) if &rest[i..] == "%return" => (&rest[..i], true),
            Some(i) => {
                let lo = rest_lo + i as u32;
                self.error(
                    Span::new(lo, span.hi),
                    format!("unknown probe suffix '{}' (expected '%return')", &rest[i..]),
                );
                return None;
            }
            None => (rest, false),
        };
        if let Some(c) = body.rfind(':').filter(|&c| body[..c].contains('/')) {
            let path = &body[..c];
            let target_text = &body[c + 1..];
            let target_lo = rest_lo + c as u32 + 1;
            let target_span = Span::new(target_lo, target_lo + target_text.len() as u32);
            let target = if target_text.is_empty() {
                self.error(
                    Span::new(target_lo, target_lo),
                    "expected a symbol or a 0xOFFSET after the uprobe path",
                );
                return None;
            } else if let Some(hex) = strip_hex(target_text) {
                match u64::from_str_radix(hex, 16) {
                    Ok(addr) => UprobeTarget::Address(addr),
                    Err(_) => {
                        self.error(
                            target_span,
                            format!("invalid uprobe address '{target_text}'"),
                        );
                        return None;
                    }
                }
            } else {
                let (name, offset) = self.symbol_offset(target_text, target_lo)?;
                UprobeTarget::Symbol { name, offset }
            };
            return Some(EventKind::Uprobe {
                path: path.to_string(),
                target,
                ret,
            });
        }
        let (symbol, offset) = self.symbol_offset(body, rest_lo)?;
        if ret && offset != 0 {
            self.error(span, "a return probe ('%return') cannot have an offset");
            return None;
        }
        Some(EventKind::Kprobe {
            symbol,
            offset,
            ret,
        })
    }

    /// `SYMBOL[+OFF]`, where SYMBOL may contain `*` and `?` globs.
    fn symbol_offset(&mut self, text: &str, lo: u32) -> Option<(String, u64)> {
        let (name, off) = match text.find('+') {
            Some(i) => (&text[..i], Some((&text[i + 1..], lo + i as u32 + 1))),
            None => (text, None),
        };
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'*' | b'?'));
        if !name_ok {
            let span = Span::new(lo, lo + name.len() as u32);
            let hint = if name.contains(':') {
                " (a uprobe path must contain '/')"
            } else {
                ""
            };
            self.error(span, format!("invalid symbol name '{name}'{hint}"));
            return None;
        }
        let offset = match off {
            None => 0,
            Some((off, off_lo)) => match parse_u64(off) {
                Some(v) => v,
                None => {
                    let span = Span::new(off_lo, off_lo + off.len() as u32);
                    self.error(span, format!("invalid offset '{off}'"));
                    return None;
                }
            },
        };
        Some((name.to_string(), offset))
    }

    /// `name=SPEC[:type]` after the kprobe or uprobe `event`.
    fn fetch_arg(&mut self, word: &str, span: Span, event: &EventDef) -> Option<FetchArg> {
        let ret = match event.kind {
            EventKind::Kprobe { ret, .. } | EventKind::Uprobe { ret, .. } => ret,
            _ => {
                self.error(
                    span,
                    format!(
                        "fetch-args are only allowed after 'probe:' events, not after '{}'",
                        event.text
                    ),
                );
                return None;
            }
        };
        let eq = word.find('=').unwrap_or(0);
        let name = &word[..eq];
        if name.is_empty()
            || !name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.error(span, format!("invalid fetch-arg name '{name}'"));
            return None;
        }
        let rest = &word[eq + 1..];
        let (spec_text, ty) = match rest.find(':') {
            Some(c) => (&rest[..c], Some(&rest[c + 1..])),
            None => (rest, None),
        };
        let spec_lo = span.lo + eq as u32 + 1;
        let spec_span = Span::new(spec_lo, spec_lo + spec_text.len() as u32);
        let Some(spec) = parse_fetch_spec(spec_text) else {
            self.error(
                spec_span,
                format!("invalid fetch-arg '{spec_text}' (expected %REG, +OFF(%REG), $retval or $stackN)"),
            );
            return None;
        };
        if spec == FetchSpec::Retval && !ret {
            self.error(
                spec_span,
                "'$retval' is only available in a return probe ('%return')",
            );
            return None;
        }
        if let Some(ty) = ty {
            const TYPES: [&str; 9] = [
                "u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "string",
            ];
            if !TYPES.contains(&ty) {
                let lo = spec_span.hi + 1;
                self.error(
                    Span::new(lo, span.hi),
                    format!("unknown fetch-arg type '{ty}' (expected u8, s8, u16, s16, u32, s32, u64, s64 or string)"),
                );
                return None;
            }
        }
        Some(FetchArg {
            name: name.to_string(),
            spec,
            ty: ty.map(str::to_string),
            span,
        })
    }

    // ---- filters ------------------------------------------------------------------------

    /// The text between the slashes of a filter, at `inner`.
    fn filter(&mut self, text: &str, inner: Span, span: Span) -> Option<Filter> {
        let mut f = FilterParser {
            text,
            base: inner.lo,
            pos: 0,
            source: self.source,
            error: None,
            depth: 0,
        };
        f.skip_ws();
        let expr = if f.pos == text.len() {
            f.fail(inner, "empty filter".to_string());
            None
        } else {
            f.or().and_then(|e| {
                f.skip_ws();
                if f.pos < text.len() {
                    let found = f.rest_word();
                    let span = f.span_here(found.len());
                    f.fail(
                        span,
                        format!(
                            "expected '&&', '||' or the closing '/' in the filter, found '{found}'"
                        ),
                    );
                    None
                } else {
                    Some(e)
                }
            })
        };
        if let Some(d) = f.error {
            self.diags.push(d);
        }
        Some(Filter { expr: expr?, span })
    }

    // ---- blocks and statements ----------------------------------------------------------

    /// `{ statements }`; `context` completes "expected '{' ..." when the brace is missing.
    fn block(&mut self, context: &str) -> PResult<Block> {
        if !self.at(&TokenKind::LBrace) {
            let found = self.describe();
            let span = self.missing_here();
            return Err(self.error(span, format!("expected '{{' {context}, found {found}")));
        }
        let open = self.bump();
        self.nested(|p| {
            let mut stmts = Vec::new();
            loop {
                while p.eat(&TokenKind::Semi) {}
                if p.too_many() {
                    return Err(Stop);
                }
                match p.tok.kind {
                    TokenKind::RBrace => break,
                    // At the end of the script this reports the unclosed brace and fails.
                    TokenKind::Eof => {
                        p.close(TokenKind::RBrace, &open)?;
                    }
                    _ => {}
                }
                let start = p.tok.span.lo;
                let result = if is_probe_keyword(&p.tok.kind) {
                    let kw = p.describe();
                    let span = p.tok.span;
                    p.error(span, format!("{kw} blocks are only allowed at top level"));
                    // Parse it anyway, so its own errors are found and the parser stays in step.
                    p.item().map(|_| None)
                } else {
                    p.stmt().map(Some)
                };
                match result {
                    Ok(Some(stmt)) => stmts.push(stmt),
                    Ok(None) => {}
                    Err(Stop) => p.sync(start),
                }
            }
            let close = p.bump();
            Ok(Block {
                stmts,
                span: open.span.to(close.span),
            })
        })
    }

    fn stmt(&mut self) -> PResult<Stmt> {
        let lo = self.tok.span.lo;
        let kind = match self.tok.kind {
            TokenKind::Var => self.var_stmt()?,
            TokenKind::Function => StmtKind::Function(self.function()?),
            TokenKind::If => self.if_stmt()?,
            TokenKind::While => {
                self.bump();
                let cond = self.condition("while")?;
                let body = self.cond_block("while")?;
                StmtKind::While { cond, body }
            }
            TokenKind::Repeat => {
                self.bump();
                let body = self.block("after 'repeat'")?;
                if !self.eat(&TokenKind::Until) {
                    return Err(self.error_expected("'until' after the block of 'repeat'"));
                }
                let cond = self.condition("until")?;
                StmtKind::Repeat { body, cond }
            }
            TokenKind::For => self.for_stmt()?,
            TokenKind::Break => {
                self.bump();
                StmtKind::Break
            }
            TokenKind::Return => {
                self.bump();
                // The value must start on the line of `return`: a bare `return` on its own line
                // is common, and the next line is then another statement, not a return value.
                let value = if self.starts_expr() && !self.tok.line_start {
                    Some(self.expr()?)
                } else {
                    None
                };
                StmtKind::Return(value)
            }
            TokenKind::Else | TokenKind::Elseif => {
                let kw = self.describe();
                let span = self.tok.span;
                return Err(self.error(span, format!("{kw} without a matching 'if'")));
            }
            TokenKind::Until => {
                let span = self.tok.span;
                return Err(self.error(span, "'until' without a matching 'repeat'"));
            }
            _ => self.expr_stmt()?,
        };
        Ok(Stmt {
            kind,
            span: Span::new(lo, self.prev_hi.max(lo)),
        })
    }

    fn starts_expr(&self) -> bool {
        use TokenKind as T;
        matches!(
            self.tok.kind,
            T::Name(_)
                | T::Number(_)
                | T::Str(_)
                | T::Nil
                | T::True
                | T::False
                | T::LParen
                | T::LBrace
                | T::Minus
                | T::Bang
                | T::Tilde
        )
    }

    /// `var a, b = 1, 2` or `var x`.
    fn var_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let mut names = vec![self.ident("a variable name after 'var'")?];
        while self.eat(&TokenKind::Comma) {
            names.push(self.ident("a variable name after ','")?);
        }
        let values = if self.eat(&TokenKind::Assign) {
            self.expr_list()?
        } else {
            Vec::new()
        };
        self.check_counts(names.len(), &values, "'var' declares", "name")?;
        Ok(StmtKind::Var { names, values })
    }

    /// More values than names would be silently dropped; say so instead.
    fn check_counts(
        &mut self,
        names: usize,
        values: &[Expr],
        what: &str,
        noun: &str,
    ) -> PResult<()> {
        if values.len() > names {
            let span = values[names].span.to(values[values.len() - 1].span);
            let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
            return Err(self.error(
                span,
                format!(
                    "{what} {} but is given {}",
                    plural(names, noun),
                    plural(values.len(), "value")
                ),
            ));
        }
        Ok(())
    }

    /// `function name(params) { body }`.
    fn function(&mut self) -> PResult<FuncDecl> {
        let kw = self.bump();
        if self.at(&TokenKind::LParen) {
            let span = kw.span.to(self.tok.span);
            return Err(self.error(
                span,
                "anonymous functions are not supported; give the function a name",
            ));
        }
        let name = self.ident("a function name after 'function'")?;
        if !self.at(&TokenKind::LParen) {
            return Err(self.error_expected(&format!("'(' after 'function {}'", name.name)));
        }
        let open = self.bump();
        let mut params = Vec::new();
        if !self.at(&TokenKind::RParen) {
            params.push(self.ident("a parameter name")?);
            while self.eat(&TokenKind::Comma) {
                params.push(self.ident("a parameter name after ','")?);
            }
        }
        self.close(TokenKind::RParen, &open)?;
        let body = self.block("to start the body of the function")?;
        Ok(FuncDecl {
            span: kw.span.to(body.span),
            name,
            params,
            body,
        })
    }

    /// `if (c) {} elseif (c) {} else if (c) {} else {}`.
    fn if_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let mut arms = Vec::new();
        let cond = self.condition("if")?;
        arms.push((cond, self.cond_block("if")?));
        let mut otherwise = None;
        loop {
            if self.eat(&TokenKind::Elseif) {
                let cond = self.condition("elseif")?;
                arms.push((cond, self.cond_block("elseif")?));
            } else if self.eat(&TokenKind::Else) {
                if self.eat(&TokenKind::If) {
                    let cond = self.condition("else if")?;
                    arms.push((cond, self.cond_block("else if")?));
                } else {
                    otherwise = Some(self.block("after 'else'")?);
                    break;
                }
            } else {
                break;
            }
        }
        Ok(StmtKind::If { arms, otherwise })
    }

    /// The parenthesised condition after `kw`. A missing `(` is reported but the condition is
    /// still parsed; a missing `)` right before the block's `{` is reported and skipped over, so
    /// the block is still checked.
    fn condition(&mut self, kw: &str) -> PResult<Expr> {
        if !self.at(&TokenKind::LParen) {
            let found = self.describe();
            let span = self.missing_here();
            self.error(
                span,
                format!("expected '(' after '{kw}', found {found} (conditions are written in parentheses)"),
            );
            if !self.starts_expr() {
                return Err(Stop);
            }
            return self.expr();
        }
        let open = self.bump();
        let cond = self.expr()?;
        if self.at(&TokenKind::LBrace) {
            let _ = self.close(TokenKind::RParen, &open);
            return Ok(cond);
        }
        self.close(TokenKind::RParen, &open)?;
        Ok(cond)
    }

    /// The block after the condition of `kw`, with a hint when the condition goes on past its
    /// parentheses, as in `if (a) && (b) {`.
    fn cond_block(&mut self, kw: &str) -> PResult<Block> {
        if binary_op(&self.tok.kind).is_some() {
            let found = self.describe();
            let span = self.tok.span;
            return Err(self.error(
                span,
                format!("expected '{{' after the condition of '{kw}', found {found} (put the whole condition in parentheses)"),
            ));
        }
        self.block(&format!("after the condition of '{kw}'"))
    }

    /// `for (i = a, b [, step]) { }` or `for (k [, v] in EXPR) { }`.
    fn for_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        if !self.at(&TokenKind::LParen) {
            return Err(self.error_expected("'(' after 'for'"));
        }
        let open = self.bump();
        let var = self.ident("a variable name after 'for ('")?;
        if self.eat(&TokenKind::Assign) {
            let start = self.expr()?;
            if !self.eat(&TokenKind::Comma) {
                return Err(self.error_expected("',' and the end value of the loop"));
            }
            let end = self.expr()?;
            let step = if self.eat(&TokenKind::Comma) {
                Some(self.expr()?)
            } else {
                None
            };
            self.close(TokenKind::RParen, &open)?;
            let body = self.block("after 'for (...)'")?;
            return Ok(StmtKind::ForNum {
                var,
                start,
                end,
                step,
                body,
            });
        }
        let value = if self.eat(&TokenKind::Comma) {
            Some(self.ident("a variable name after ','")?)
        } else {
            None
        };
        if !self.eat(&TokenKind::In) {
            let what = if value.is_some() {
                "'in' after the loop variables".to_string()
            } else {
                format!("'=' or 'in' after 'for ({}'", var.name)
            };
            return Err(self.error_expected(&what));
        }
        let iter = self.expr()?;
        self.close(TokenKind::RParen, &open)?;
        let body = self.block("after 'for (...)'")?;
        Ok(StmtKind::ForIn {
            key: var,
            value,
            iter,
            body,
        })
    }

    /// An assignment, a `+=` / `<<<` update or a call, all starting with an expression.
    fn expr_stmt(&mut self) -> PResult<StmtKind> {
        if !matches!(self.tok.kind, TokenKind::Name(_) | TokenKind::LParen) {
            // The token itself is the problem here, not something missing before it.
            let found = self.describe();
            let span = self.tok.span;
            return Err(self.error(span, format!("expected a statement, found {found}")));
        }
        let first = self.suffixed_expr()?;
        match self.tok.kind {
            TokenKind::Assign | TokenKind::Comma => {
                let mut targets = vec![first];
                while self.eat(&TokenKind::Comma) {
                    targets.push(self.suffixed_expr()?);
                }
                if !self.eat(&TokenKind::Assign) {
                    return Err(self.error_expected("'=' after the assignment targets"));
                }
                for t in &targets {
                    self.check_target(t)?;
                }
                let values = self.expr_list()?;
                self.check_counts(targets.len(), &values, "the assignment has", "target")?;
                Ok(StmtKind::Assign { targets, values })
            }
            TokenKind::PlusAssign | TokenKind::LtLtLt => {
                let aggregate = self.at(&TokenKind::LtLtLt);
                self.check_target(&first)?;
                self.bump();
                let value = self.expr()?;
                Ok(if aggregate {
                    StmtKind::Aggregate {
                        target: first,
                        value,
                    }
                } else {
                    StmtKind::AddAssign {
                        target: first,
                        value,
                    }
                })
            }
            _ if matches!(first.kind, ExprKind::Call { .. }) => Ok(StmtKind::Expr(first)),
            TokenKind::Name(_) if first.kind == ExprKind::Name("local".into()) => Err(self.error(
                first.span,
                "'local' is Lua; ktap declares variables with 'var'",
            )),
            _ => {
                if self.tok.line_start
                    || matches!(
                        self.tok.kind,
                        TokenKind::Eof | TokenKind::RBrace | TokenKind::Semi
                    )
                {
                    Err(self.error(
                        first.span,
                        "this expression is not a statement (expected an assignment or a call)",
                    ))
                } else {
                    Err(self.error_expected("'=', '+=', '<<<' or a call after the expression"))
                }
            }
        }
    }

    fn check_target(&mut self, e: &Expr) -> PResult<()> {
        match e.kind {
            ExprKind::Name(_) | ExprKind::Index { .. } | ExprKind::Field { .. } => Ok(()),
            _ => Err(self.error(
                e.span,
                "cannot assign to this expression (expected a variable, 't[k]' or 'a.b')",
            )),
        }
    }

    // ---- expressions --------------------------------------------------------------------

    fn expr_list(&mut self) -> PResult<Vec<Expr>> {
        let mut list = vec![self.expr()?];
        while self.eat(&TokenKind::Comma) {
            list.push(self.expr()?);
        }
        Ok(list)
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.subexpr(0)
    }

    /// An expression whose binary operators all bind tighter than `limit` (precedence climbing).
    fn subexpr(&mut self, limit: u8) -> PResult<Expr> {
        self.nested(|p| {
            let unary = match p.tok.kind {
                TokenKind::Bang => Some(UnOp::Not),
                TokenKind::Minus => Some(UnOp::Neg),
                TokenKind::Tilde => Some(UnOp::BitNot),
                _ => None,
            };
            let lhs = if let Some(op) = unary {
                let op_tok = p.bump();
                let operand = p.subexpr(UNARY_POWER)?;
                let span = op_tok.span.to(operand.span);
                p.expr_node(
                    ExprKind::Unary {
                        op,
                        expr: Box::new(operand),
                    },
                    span,
                )
            } else {
                p.simple_expr()?
            };
            let saved = p.depth;
            let result = p.binary_tail(lhs, limit);
            p.depth = saved;
            result
        })
    }

    /// The binary operators after `lhs`. Each one makes the tree one level deeper on the
    /// left, so each one takes a level of the nesting budget until the caller restores it.
    fn binary_tail(&mut self, mut lhs: Expr, limit: u8) -> PResult<Expr> {
        while let Some((op, left, right)) = binary_op(&self.tok.kind) {
            if left <= limit {
                break;
            }
            self.deeper()?;
            self.bump();
            let rhs = self.subexpr(right)?;
            let span = lhs.span.to(rhs.span);
            lhs = self.expr_node(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            );
        }
        Ok(lhs)
    }

    /// Takes one level of the nesting budget, or reports that it is exhausted.
    fn deeper(&mut self) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            let span = self.tok.span;
            return Err(self.error(span, TOO_DEEP));
        }
        self.depth += 1;
        Ok(())
    }

    fn simple_expr(&mut self) -> PResult<Expr> {
        let span = self.tok.span;
        let kind = match &self.tok.kind {
            TokenKind::Number(n) => ExprKind::Number(*n),
            TokenKind::Str(s) => ExprKind::Str(s.clone()),
            TokenKind::Nil => ExprKind::Nil,
            TokenKind::True => ExprKind::Bool(true),
            TokenKind::False => ExprKind::Bool(false),
            TokenKind::LBrace => return self.table(),
            TokenKind::Function => {
                // Taking the keyword keeps recovery from reading it again as a statement.
                self.bump();
                return Err(self.error(
                    span,
                    "anonymous functions are not supported; give the function a name",
                ));
            }
            _ => return self.suffixed_expr(),
        };
        self.bump();
        Ok(self.expr_node(kind, span))
    }

    /// A name or parenthesised expression followed by `.name`, `[key]` and `(args)` suffixes.
    /// A `(` at the start of a line does not continue a call: it begins the next statement.
    fn suffixed_expr(&mut self) -> PResult<Expr> {
        let saved = self.depth;
        let result = self.suffixed_expr_inner();
        self.depth = saved;
        result
    }

    /// [`Parser::suffixed_expr`] proper; every suffix nests the tree one level deeper.
    fn suffixed_expr_inner(&mut self) -> PResult<Expr> {
        let mut e = match &self.tok.kind {
            TokenKind::Name(name) => {
                let kind = ExprKind::Name(name.clone());
                let span = self.bump().span;
                self.expr_node(kind, span)
            }
            TokenKind::LParen => {
                let open = self.bump();
                let mut inner = self.expr()?;
                let close = self.close(TokenKind::RParen, &open)?;
                // The parentheses belong to the expression's span, so carets cover them.
                inner.span = open.span.to(close.span);
                inner
            }
            _ => return Err(self.error_expected("an expression")),
        };
        loop {
            if matches!(self.tok.kind, TokenKind::Dot | TokenKind::LBracket)
                || (self.at(&TokenKind::LParen) && !self.tok.line_start)
            {
                self.deeper()?;
            }
            match self.tok.kind {
                TokenKind::Dot => {
                    self.bump();
                    let name = self.field_ident()?;
                    let span = e.span.to(name.span);
                    e = self.expr_node(
                        ExprKind::Field {
                            obj: Box::new(e),
                            name,
                        },
                        span,
                    );
                }
                TokenKind::LBracket => {
                    let open = self.bump();
                    let key = self.expr()?;
                    let close = self.close(TokenKind::RBracket, &open)?;
                    let span = e.span.to(close.span);
                    e = self.expr_node(
                        ExprKind::Index {
                            obj: Box::new(e),
                            key: Box::new(key),
                        },
                        span,
                    );
                }
                TokenKind::LParen if !self.tok.line_start => {
                    let open = self.bump();
                    let mut args = Vec::new();
                    if !self.at(&TokenKind::RParen) {
                        args = self.expr_list()?;
                    }
                    let close = self.close(TokenKind::RParen, &open)?;
                    let span = e.span.to(close.span);
                    e = self.expr_node(
                        ExprKind::Call {
                            callee: Box::new(e),
                            args,
                        },
                        span,
                    );
                }
                _ => return Ok(e),
            }
        }
    }

    /// `{ 1, 2, x = 3, [k] = v }`; items are separated by `,` or `;`, a trailing one is allowed.
    fn table(&mut self) -> PResult<Expr> {
        self.tables_open += 1;
        let result = self.table_inner();
        self.tables_open -= 1;
        result
    }

    fn table_inner(&mut self) -> PResult<Expr> {
        let open = self.bump();
        let mut items = Vec::new();
        while !self.at(&TokenKind::RBrace) {
            if self.at(&TokenKind::Eof) {
                break;
            }
            let item = if self.at(&TokenKind::LBracket) {
                let bracket = self.bump();
                let key = self.expr()?;
                self.close(TokenKind::RBracket, &bracket)?;
                if !self.eat(&TokenKind::Assign) {
                    return Err(self.error_expected("'=' after '[key]' in the table"));
                }
                TableItem::Keyed(key, self.expr()?)
            } else if matches!(self.tok.kind, TokenKind::Name(_))
                && self.peek().kind == TokenKind::Assign
            {
                let name = self.ident("a field name")?;
                self.bump();
                TableItem::Named(name, self.expr()?)
            } else {
                TableItem::Positional(self.expr()?)
            };
            items.push(item);
            if !self.eat(&TokenKind::Comma) && !self.eat(&TokenKind::Semi) {
                break;
            }
        }
        let close = self.close(TokenKind::RBrace, &open).inspect_err(|_| {
            // When the next line follows, the `}` is missing rather than misplaced: there is
            // no closing brace of this table to skip to.
            if self.tok.line_start {
                self.tables_at_error = self.tables_at_error.saturating_sub(1);
            }
        })?;
        let span = open.span.to(close.span);
        Ok(self.expr_node(ExprKind::Table(items), span))
    }
}

/// A token as messages name it: its text in quotes, or "end of file".
fn describe_token(tok: &Token, text: &str) -> String {
    if tok.kind == TokenKind::Eof {
        return "end of file".to_string();
    }
    let s = text
        .get(tok.span.lo as usize..tok.span.hi as usize)
        .unwrap_or("");
    let mut shown: String = s.chars().take(24).collect();
    if shown.len() < s.len() {
        shown.push_str("...");
    }
    format!("'{shown}'")
}

fn strip_hex(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// A decimal or `0x` hexadecimal offset.
fn parse_u64(s: &str) -> Option<u64> {
    match strip_hex(s) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// `%reg`, `[+-]OFF(%reg)`, `$retval` or `$stackN`.
fn parse_fetch_spec(s: &str) -> Option<FetchSpec> {
    let reg_name = |r: &str| {
        let name = r.strip_prefix('%')?;
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then(|| name.to_string())
    };
    if s == "$retval" {
        return Some(FetchSpec::Retval);
    }
    if let Some(n) = s.strip_prefix("$stack") {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return n.parse().ok().map(FetchSpec::Stack);
        }
        return None;
    }
    if s.starts_with('%') {
        return reg_name(s).map(FetchSpec::Reg);
    }
    let open = s.find('(')?;
    let inner = s[open + 1..].strip_suffix(')')?;
    let reg = reg_name(inner)?;
    let off_text = &s[..open];
    let (negative, digits) = match off_text.as_bytes().first() {
        Some(b'+') => (false, &off_text[1..]),
        Some(b'-') => (true, &off_text[1..]),
        _ => (false, off_text),
    };
    let magnitude = i64::try_from(parse_u64(digits)?).ok()?;
    let offset = if negative { -magnitude } else { magnitude };
    Some(FetchSpec::Deref { offset, reg })
}

/// The kernel event-filter language between a filter's slashes. It keeps only its first error:
/// a filter is one short line, and what follows a mistake in it is rarely meaningful.
struct FilterParser<'t> {
    text: &'t str,
    /// Source offset of `text[0]`.
    base: u32,
    pos: usize,
    source: &'t Source,
    error: Option<Diagnostic>,
    /// Parentheses open at this point, bounded like the script's own nesting.
    depth: u32,
}

impl FilterParser<'_> {
    fn fail(&mut self, span: Span, message: String) {
        if self.error.is_none() {
            self.error = Some(Diagnostic::error(span, message));
        }
    }

    fn span_here(&self, len: usize) -> Span {
        let lo = self.base + self.pos as u32;
        Span::new(lo, lo + len as u32)
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(|c: char| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// The rest of the current word, for messages.
    fn rest_word(&self) -> &str {
        let rest = &self.text[self.pos..];
        let end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// Takes one level of the nesting budget (parentheses, `!`, and each `&&` / `||`, which
    /// all make the tree deeper), or reports that it is exhausted.
    fn deeper(&mut self) -> Option<()> {
        if self.depth >= MAX_DEPTH {
            let span = self.span_here(0);
            self.fail(span, format!("filter {TOO_DEEP}"));
            return None;
        }
        self.depth += 1;
        Some(())
    }

    fn or(&mut self) -> Option<FilterExpr> {
        let saved = self.depth;
        let r = self.or_inner();
        self.depth = saved;
        r
    }

    fn or_inner(&mut self) -> Option<FilterExpr> {
        let mut lhs = self.and()?;
        while self.eat("||") {
            self.deeper()?;
            let rhs = self.and()?;
            lhs = FilterExpr::Or(Box::new(lhs), Box::new(rhs));
        }
        Some(lhs)
    }

    fn and(&mut self) -> Option<FilterExpr> {
        let saved = self.depth;
        let r = self.and_inner();
        self.depth = saved;
        r
    }

    fn and_inner(&mut self) -> Option<FilterExpr> {
        let mut lhs = self.not()?;
        while self.eat("&&") {
            self.deeper()?;
            let rhs = self.not()?;
            lhs = FilterExpr::And(Box::new(lhs), Box::new(rhs));
        }
        Some(lhs)
    }

    /// A term with any number of `!` before it, counted in a loop rather than by recursion.
    fn not(&mut self) -> Option<FilterExpr> {
        let saved = self.depth;
        let r = self.not_inner();
        self.depth = saved;
        r
    }

    fn not_inner(&mut self) -> Option<FilterExpr> {
        let mut negations = 0;
        loop {
            self.skip_ws();
            // `!=` is an operator, never a negation.
            let rest = &self.text[self.pos..];
            if rest.starts_with('!') && !rest.starts_with("!=") {
                self.deeper()?;
                self.pos += 1;
                negations += 1;
            } else {
                break;
            }
        }
        let mut e = if self.text[self.pos..].starts_with('(') {
            let open = self.span_here(1);
            self.deeper()?;
            self.pos += 1;
            let e = self.or()?;
            if !self.eat(")") {
                let (line, col) = self.source.line_col(open.lo);
                let span = self.span_here(self.rest_word().len());
                self.fail(
                    span,
                    format!("expected ')' to close '(' at {line}:{col} in the filter"),
                );
                return None;
            }
            e
        } else {
            self.cmp()?
        };
        for _ in 0..negations {
            e = FilterExpr::Not(Box::new(e));
        }
        Some(e)
    }

    /// `field OP value`.
    fn cmp(&mut self) -> Option<FilterExpr> {
        self.skip_ws();
        let lo = self.pos;
        let rest = &self.text[lo..];
        let len = rest
            .bytes()
            .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_')
            .count();
        if len == 0 || rest.as_bytes()[0].is_ascii_digit() {
            let found = self.rest_word().to_string();
            let span = self.span_here(found.len());
            let found = if found.is_empty() {
                "the end of the filter".to_string()
            } else {
                format!("'{found}'")
            };
            self.fail(
                span,
                format!("expected a field name in the filter, found {found}"),
            );
            return None;
        }
        let field = Ident {
            name: rest[..len].to_string(),
            span: self.span_here(len),
        };
        self.pos += len;
        self.skip_ws();
        const OPS: [(&str, FilterOp); 8] = [
            ("==", FilterOp::Eq),
            ("!=", FilterOp::Ne),
            ("<=", FilterOp::Le),
            (">=", FilterOp::Ge),
            ("<", FilterOp::Lt),
            (">", FilterOp::Gt),
            ("~", FilterOp::Glob),
            ("&", FilterOp::BitAnd),
        ];
        let rest = &self.text[self.pos..];
        let found = OPS
            .iter()
            .find(|(s, _)| rest.starts_with(s) && !(*s == "&" && rest.starts_with("&&")));
        let Some(&(op_text, op)) = found else {
            let span = self.span_here(self.rest_word().len());
            self.fail(
                span,
                format!(
                    "expected a comparison (==, !=, <, <=, >, >=, & or ~) after '{}' in the filter",
                    field.name
                ),
            );
            return None;
        };
        self.pos += op_text.len();
        self.skip_ws();
        let value_lo = self.pos;
        let value = self.value(op_text)?;
        if op == FilterOp::Glob && !matches!(value, FilterValue::Str(_)) {
            let span = Span::new(self.base + value_lo as u32, self.base + self.pos as u32);
            self.fail(
                span,
                "'~' needs a string (a glob pattern) on its right".to_string(),
            );
            return None;
        }
        let span = Span::new(self.base + lo as u32, self.base + self.pos as u32);
        Some(FilterExpr::Cmp {
            field,
            op,
            value,
            span,
        })
    }

    /// A number, a quoted string (no escapes, as the kernel reads it) or a bare word such as the
    /// glob in `ip==mutex*`.
    fn value(&mut self, op: &str) -> Option<FilterValue> {
        let rest = &self.text[self.pos..];
        if let Some(q) = rest.chars().next().filter(|&c| c == '"' || c == '\'') {
            let Some(end) = rest[1..].find(q) else {
                let span = self.span_here(1);
                self.fail(span, "unterminated string in the filter".to_string());
                return None;
            };
            let s = rest[1..1 + end].to_string();
            self.pos += end + 2;
            return Some(FilterValue::Str(s));
        }
        let len = rest
            .find(|c: char| {
                c.is_ascii_whitespace() || matches!(c, '(' | ')' | '&' | '|' | '"' | '\'')
            })
            .unwrap_or(rest.len());
        if len == 0 {
            let span = self.span_here(0);
            self.fail(span, format!("expected a value after '{op}' in the filter"));
            return None;
        }
        let word = &rest[..len];
        self.pos += len;
        let number = match word.strip_prefix('-') {
            Some(digits) => parse_u64(digits)
                .and_then(|v| i64::try_from(v).ok())
                .map(|v| -v),
            None => parse_u64(word).map(|v| v as i64),
        };
        Some(match number {
            Some(n) if !word.is_empty() && word != "-" => FilterValue::Num(n),
            _ => FilterValue::Str(word.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source {
            name: "t.kp".into(),
            text: text.into(),
        }
    }

    fn parse_ok(text: &str) -> Script {
        match parse(&src(text)) {
            Ok(s) => s,
            Err(d) => panic!("{text:?}: {}", crate::diag::render_all(&d, &src(text))),
        }
    }

    fn messages(text: &str) -> Vec<String> {
        match parse(&src(text)) {
            Ok(_) => Vec::new(),
            Err(d) => d.into_iter().map(|d| d.message).collect(),
        }
    }

    fn collect_ids(e: &Expr, out: &mut Vec<ExprId>) {
        out.push(e.id);
        match &e.kind {
            ExprKind::Index { obj, key } => {
                collect_ids(obj, out);
                collect_ids(key, out);
            }
            ExprKind::Field { obj, .. } => collect_ids(obj, out),
            ExprKind::Call { callee, args } => {
                collect_ids(callee, out);
                args.iter().for_each(|a| collect_ids(a, out));
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                collect_ids(lhs, out);
                collect_ids(rhs, out);
            }
            ExprKind::Unary { expr, .. } => collect_ids(expr, out),
            ExprKind::Table(items) => {
                for it in items {
                    match it {
                        TableItem::Positional(v) | TableItem::Named(_, v) => collect_ids(v, out),
                        TableItem::Keyed(k, v) => {
                            collect_ids(k, out);
                            collect_ids(v, out);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn first_expr(script: &Script) -> &Expr {
        match &script.items[0] {
            Item::Stmt(Stmt {
                kind: StmtKind::Assign { values, .. },
                ..
            }) => &values[0],
            other => panic!("not an assignment: {other:?}"),
        }
    }

    #[test]
    fn ids_are_unique_and_sequential() {
        let s = parse_ok("x = f(a[1], {2, k = -3}) .. b.c\ny = 1 + 2 * 3");
        let mut ids = Vec::new();
        for item in &s.items {
            if let Item::Stmt(Stmt {
                kind: StmtKind::Assign { targets, values },
                ..
            }) = item
            {
                targets
                    .iter()
                    .chain(values)
                    .for_each(|e| collect_ids(e, &mut ids));
            }
        }
        ids.sort();
        let n = ids.len() as u32;
        assert_eq!(ids, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn expression_spans() {
        let text = "x = (a + b) * t[k].f(1)";
        let s = parse_ok(text);
        let e = first_expr(&s);
        let at = |sp: Span| &text[sp.lo as usize..sp.hi as usize];
        assert_eq!(at(e.span), "(a + b) * t[k].f(1)");
        let ExprKind::Binary { lhs, rhs, .. } = &e.kind else {
            panic!()
        };
        assert_eq!(at(lhs.span), "(a + b)");
        assert_eq!(at(rhs.span), "t[k].f(1)");
        let ExprKind::Call { callee, .. } = &rhs.kind else {
            panic!()
        };
        assert_eq!(at(callee.span), "t[k].f");
        let Item::Stmt(stmt) = &s.items[0] else {
            panic!()
        };
        assert_eq!(at(stmt.span), text);
    }

    #[test]
    fn probe_header_spans() {
        let text = "trace probe:do_sys_open dfd=%di fname=+0(%si):string, a:b /pid != 1 && comm ~ \"x\"/ { }";
        let s = parse_ok(text);
        let at = |sp: Span| &text[sp.lo as usize..sp.hi as usize];
        let Item::Trace(t) = &s.items[0] else {
            panic!()
        };
        assert_eq!(at(t.span), text);
        assert_eq!(at(t.events[0].span), "probe:do_sys_open");
        assert_eq!(t.events[0].text, "probe:do_sys_open");
        let spans: Vec<&str> = t.events[0].fetch_args.iter().map(|a| at(a.span)).collect();
        assert_eq!(spans, ["dfd=%di", "fname=+0(%si):string"]);
        assert_eq!(at(t.events[1].span), "a:b");
        let f = t.filter.as_ref().unwrap();
        assert_eq!(at(f.span), "/pid != 1 && comm ~ \"x\"/");
        let FilterExpr::And(lhs, rhs) = &f.expr else {
            panic!()
        };
        let (FilterExpr::Cmp { field, span, .. }, FilterExpr::Cmp { span: rspan, .. }) =
            (&**lhs, &**rhs)
        else {
            panic!()
        };
        assert_eq!(at(field.span), "pid");
        assert_eq!(at(*span), "pid != 1");
        assert_eq!(at(*rspan), "comm ~ \"x\"");
        assert_eq!(at(t.body.span), "{ }");
        let s = parse_ok("tick-5s { }");
        let Item::Tick { period, .. } = &s.items[0] else {
            panic!()
        };
        assert_eq!(period.span, Span::new(5, 7));
    }

    #[test]
    fn precedence() {
        let dump = |t: &str| crate::pretty::dump(&parse_ok(t));
        assert_eq!(
            dump("x = a || b && c == d | e ^ f & g << h .. i + j * k"),
            "(= x (|| a (&& b (== c (| d (^ e (& f (<< g (.. h (+ i (* j k)))))))))))\n"
        );
        assert_eq!(dump("x = a .. b .. c"), "(= x (.. a (.. b c)))\n");
        assert_eq!(dump("x = a - b - c"), "(= x (- (- a b) c))\n");
        assert_eq!(dump("x = -a * ~b"), "(= x (* (neg a) (~ b)))\n");
        assert_eq!(dump("x = !a == b"), "(= x (== (! a) b))\n");
        assert_eq!(dump("x = a + b .. c"), "(= x (.. (+ a b) c))\n");
        assert_eq!(dump("x = a < b < c"), "(= x (< (< a b) c))\n");
    }

    #[test]
    fn periods() {
        let ns = |t: &str| match &parse_ok(t).items[0] {
            Item::Tick { period, .. } | Item::Profile { period, .. } => period.ns,
            _ => panic!(),
        };
        assert_eq!(ns("tick-5s {}"), 5_000_000_000);
        assert_eq!(ns("tick-2sec {}"), 2_000_000_000);
        assert_eq!(ns("tick-200ms {}"), 200_000_000);
        assert_eq!(ns("tick-3msec {}"), 3_000_000);
        assert_eq!(ns("profile-10us {}"), 10_000);
        assert_eq!(ns("profile - 7usec{}"), 7_000);
        assert_eq!(
            messages("tick-0s {}"),
            vec!["the period must be greater than zero"]
        );
        assert_eq!(
            messages("tick-99999999999999s {}"),
            vec!["period too large"]
        );
        assert_eq!(
            messages("tick {}"),
            vec!["expected '-' and a period after 'tick', as in 'tick-5s'"]
        );
        assert_eq!(
            messages("tick-s {}"),
            vec!["expected a number after 'tick-', as in 'tick-5s'"]
        );
    }

    #[test]
    fn fetch_specs() {
        assert_eq!(parse_fetch_spec("%di"), Some(FetchSpec::Reg("di".into())));
        assert_eq!(
            parse_fetch_spec("+0(%si)"),
            Some(FetchSpec::Deref {
                offset: 0,
                reg: "si".into()
            })
        );
        assert_eq!(
            parse_fetch_spec("-0x10(%bp)"),
            Some(FetchSpec::Deref {
                offset: -16,
                reg: "bp".into()
            })
        );
        assert_eq!(
            parse_fetch_spec("8(%r1)"),
            Some(FetchSpec::Deref {
                offset: 8,
                reg: "r1".into()
            })
        );
        assert_eq!(parse_fetch_spec("$retval"), Some(FetchSpec::Retval));
        assert_eq!(parse_fetch_spec("$stack3"), Some(FetchSpec::Stack(3)));
        for bad in [
            "$stack",
            "$comm",
            "%",
            "+0(%si",
            "+x(%si)",
            "di",
            "+0(+8(%si))",
            "",
        ] {
            assert_eq!(parse_fetch_spec(bad), None, "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("x = {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(messages(&deep), vec![TOO_DEEP]);
        let deep = format!("x = {}1", "- ".repeat(5000));
        assert_eq!(messages(&deep), vec![TOO_DEEP]);
        let deep = format!("x = {}1", "!~".repeat(5000));
        assert_eq!(messages(&deep), vec![TOO_DEEP]);
        let deep = format!("x = 1{}", " + 1".repeat(5000));
        assert_eq!(messages(&deep), vec![TOO_DEEP]);
        let deep = format!("x = 1{}", " .. 1".repeat(5000));
        assert_eq!(messages(&deep), vec![TOO_DEEP]);
        let deep = format!("x = a{}", ".b[1](2)".repeat(5000));
        assert_eq!(messages(&deep), vec![TOO_DEEP]);
        let deep = format!("trace a:b /{}x==1/ {{}}", "!".repeat(5000));
        assert_eq!(messages(&deep), vec![format!("filter {TOO_DEEP}")]);
        let deep = format!("trace a:b /x==1{}/ {{}}", " && x==1".repeat(5000));
        assert_eq!(messages(&deep), vec![format!("filter {TOO_DEEP}")]);
        let deep = format!(
            "trace a:b /{}x==1{}/ {{}}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert_eq!(messages(&deep), vec![format!("filter {TOO_DEEP}")]);
        let deep = format!("{}{}", "if (a) {".repeat(5000), "}".repeat(5000));
        assert!(messages(&deep).contains(&TOO_DEEP.to_string()));
        let deep = format!("x = {}{}", "{".repeat(5000), "}".repeat(5000));
        assert!(messages(&deep).contains(&TOO_DEEP.to_string()));
    }

    #[test]
    fn error_limit() {
        let text = "x = = 1\n".repeat(100);
        assert_eq!(messages(&text).len(), MAX_ERRORS);
    }
}
