//! The syntax tree of a ktap script, as the parser builds it. Every expression carries a
//! unique id (for the type checker's side tables) and a span (for diagnostics).

use ktap_bpf::Span;

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole script: top-level statements and probe blocks, in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A top-level statement (including `var` globals and `function` definitions).
    Stmt(Stmt),
    /// `trace EVENTDEF {, EVENTDEF} [/FILTER/] { block }`.
    Trace(Trace),
    /// `trace_end { block }`.
    TraceEnd { body: Block, span: Span },
    /// `tick-N<unit> { block }`: runs in ktap's process every period.
    Tick {
        period: Period,
        body: Block,
        span: Span,
    },
    /// `profile-N<unit> { block }`: runs on every CPU in the kernel every period.
    Profile {
        period: Period,
        body: Block,
        span: Span,
    },
}

/// `N<unit>` of a tick or profile block, converted to nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub ns: u64,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub events: Vec<EventDef>,
    pub filter: Option<Filter>,
    pub body: Block,
    pub span: Span,
}

/// One event definition after `trace`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDef {
    pub kind: EventKind,
    /// Fetch-args after a kprobe/uprobe (`name=%reg:u32 ...`).
    pub fetch_args: Vec<FetchArg>,
    /// The text as written, for messages.
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `SUBSYS:EVENT` with optional `*` globs.
    Tracepoint { category: String, name: String },
    /// `probe:SYMBOL[+OFF]` (globs allowed) or `probe:SYMBOL%return`.
    Kprobe {
        symbol: String,
        offset: u64,
        ret: bool,
    },
    /// `probe:/path:SYMBOL`, `probe:/path:0xOFF`, with optional `%return`.
    Uprobe {
        path: String,
        target: UprobeTarget,
        ret: bool,
    },
    /// `sdt:/path:NAME`.
    Sdt { path: String, name: String },
    /// `ftrace:function` (the filter `/ip==GLOB/` selects functions).
    Ftrace { tracer: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UprobeTarget {
    Symbol { name: String, offset: u64 },
    Address(u64),
}

/// `name=SPEC[:type]` after a kprobe or uprobe event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchArg {
    pub name: String,
    pub spec: FetchSpec,
    /// `u8 s8 u16 s16 u32 s32 u64 s64 string`, if given.
    pub ty: Option<String>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchSpec {
    /// `%reg`
    Reg(String),
    /// `+OFF(%reg)` / `-OFF(%reg)`
    Deref { offset: i64, reg: String },
    /// `$retval`
    Retval,
    /// `$stackN`
    Stack(u32),
    /// A constant (an SDT marker's argument can be one); the parser never makes it.
    Const(i64),
}

/// The `/.../` filter in the kernel's event-filter language.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub expr: FilterExpr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FilterExpr {
    /// `field OP value`; for `~` the value is a glob string.
    Cmp {
        field: Ident,
        op: FilterOp,
        value: FilterValue,
        span: Span,
    },
    And(Box<FilterExpr>, Box<FilterExpr>),
    Or(Box<FilterExpr>, Box<FilterExpr>),
    Not(Box<FilterExpr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Glob,
    /// `&` (bit test), which the kernel's filter language also has.
    BitAnd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterValue {
    Num(i64),
    Str(String),
}

/// A `{ ... }` sequence of statements.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `var a, b = 1, 2` (values may be fewer than names: the rest start as nil).
    Var {
        names: Vec<Ident>,
        values: Vec<Expr>,
    },
    /// `a, t[k] = x, y`.
    Assign {
        targets: Vec<Expr>,
        values: Vec<Expr>,
    },
    /// `target += value`.
    AddAssign {
        target: Expr,
        value: Expr,
    },
    /// `target <<< value` (aggregation).
    Aggregate {
        target: Expr,
        value: Expr,
    },
    /// A call used as a statement.
    Expr(Expr),
    /// `if (c) {} elseif (c) {} else {}`.
    If {
        arms: Vec<(Expr, Block)>,
        otherwise: Option<Block>,
    },
    While {
        cond: Expr,
        body: Block,
    },
    /// `repeat { } until (c)`.
    Repeat {
        body: Block,
        cond: Expr,
    },
    /// `for (i = a, b [, step]) { }`.
    ForNum {
        var: Ident,
        start: Expr,
        end: Expr,
        step: Option<Expr>,
        body: Block,
    },
    /// `for (k, v in pairs(t)) { }`; `value` is absent for `for (k in pairs(t))`.
    ForIn {
        key: Ident,
        value: Option<Ident>,
        iter: Expr,
        body: Block,
    },
    Break,
    Return(Option<Expr>),
    /// `function name(params) { body }`.
    Function(FuncDecl),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FuncDecl {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Block,
    pub span: Span,
}

/// Unique within one script; the type checker keys its tables by it.
pub type ExprId = u32;

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub id: ExprId,
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Nil,
    Bool(bool),
    Number(i64),
    /// String literal bytes after escapes.
    Str(Vec<u8>),
    /// A variable, a built-in variable (`pid`, `execname`, ...) or a built-in function name.
    Name(String),
    /// `obj[key]`.
    Index {
        obj: Box<Expr>,
        key: Box<Expr>,
    },
    /// `obj.name` (`args.FIELD`, `table.new`, `ansi.clear_screen`, `t.x`).
    Field {
        obj: Box<Expr>,
        name: Ident,
    },
    /// `callee(args)`.
    Call {
        callee: Box<Expr>,
        args: Vec<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    /// `{ 1, 2, x = 3, [k] = v }`.
    Table(Vec<TableItem>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum TableItem {
    /// `v`: key is its 1-based position among positional items.
    Positional(Expr),
    /// `name = v`: key is the string `name`.
    Named(Ident, Expr),
    /// `[k] = v`.
    Keyed(Expr, Expr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitOr,
    BitXor,
    BitAnd,
    Shl,
    Shr,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        use BinOp::*;
        match self {
            Or => "||",
            And => "&&",
            Eq => "==",
            Ne => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            BitOr => "|",
            BitXor => "^",
            BitAnd => "&",
            Shl => "<<",
            Shr => ">>",
            Concat => "..",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Not,
    Neg,
    BitNot,
}
