//! A compact, deterministic S-expression dump of a [`Script`], for golden tests and debugging.
//!
//! Format: one item or statement per line; the statements of a block follow their head on
//! lines indented two more spaces, and the closing parentheses end the last of them.
//! Expressions stay on one line: names bare, numbers in decimal, strings quoted with escapes,
//! `(index t k)`, `(. obj name)`, `(call f args...)`, `(OP a b)` for binary operators,
//! `(neg a)` `(! a)` `(~ a)`, `(table item...)` with `(= name v)` and `(= [k] v)` items.
//! Spans are left out: tests of positions look at the tree directly.

use crate::ast::*;
use std::fmt::Write;

/// The dump of `script`, ending with a newline.
pub fn dump(script: &Script) -> String {
    let mut d = Dumper { out: String::new() };
    for item in &script.items {
        d.item(item);
        d.out.push('\n');
    }
    d.out
}

struct Dumper {
    out: String,
}

impl Dumper {
    fn indent(&mut self, level: usize) {
        self.out.push('\n');
        for _ in 0..level {
            self.out.push_str("  ");
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Stmt(s) => self.stmt(s, 0),
            Item::Trace(t) => {
                self.out.push_str("(trace");
                for ev in &t.events {
                    self.out.push(' ');
                    event(&mut self.out, ev);
                }
                if let Some(f) = &t.filter {
                    self.out.push_str(" (filter ");
                    filter(&mut self.out, &f.expr);
                    self.out.push(')');
                }
                self.body(&t.body, 1);
            }
            Item::TraceEnd { body, .. } => {
                self.out.push_str("(trace-end");
                self.body(body, 1);
            }
            Item::Tick { period, body, .. } => {
                let _ = write!(self.out, "(tick {}", period.ns);
                self.body(body, 1);
            }
            Item::Profile { period, body, .. } => {
                let _ = write!(self.out, "(profile {}", period.ns);
                self.body(body, 1);
            }
        }
    }

    /// The statements of `block` at `level`, then the `)` that closes the node they belong to.
    fn body(&mut self, block: &Block, level: usize) {
        for s in &block.stmts {
            self.indent(level);
            self.stmt(s, level);
        }
        self.out.push(')');
    }

    fn stmt(&mut self, s: &Stmt, level: usize) {
        match &s.kind {
            StmtKind::Var { names, values } => {
                self.out.push_str("(var ");
                if names.len() == 1 && values.len() <= 1 {
                    self.out.push_str(&names[0].name);
                    if let Some(v) = values.first() {
                        self.out.push(' ');
                        expr(&mut self.out, v);
                    }
                } else {
                    self.list(names.iter().map(|n| n.name.as_str()));
                    self.out.push(' ');
                    self.expr_list(values);
                }
                self.out.push(')');
            }
            StmtKind::Assign { targets, values } => {
                self.out.push_str("(= ");
                if targets.len() == 1 && values.len() == 1 {
                    expr(&mut self.out, &targets[0]);
                    self.out.push(' ');
                    expr(&mut self.out, &values[0]);
                } else {
                    self.expr_list(targets);
                    self.out.push(' ');
                    self.expr_list(values);
                }
                self.out.push(')');
            }
            StmtKind::AddAssign { target, value } => self.pair("+=", target, value),
            StmtKind::Aggregate { target, value } => self.pair("<<<", target, value),
            StmtKind::Expr(e) => expr(&mut self.out, e),
            StmtKind::If { arms, otherwise } => {
                self.out.push_str("(if");
                for (cond, block) in arms {
                    self.indent(level + 1);
                    self.out.push_str("(arm ");
                    expr(&mut self.out, cond);
                    self.body(block, level + 2);
                }
                if let Some(block) = otherwise {
                    self.indent(level + 1);
                    self.out.push_str("(else");
                    self.body(block, level + 2);
                }
                self.out.push(')');
            }
            StmtKind::While { cond, body } => {
                self.out.push_str("(while ");
                expr(&mut self.out, cond);
                self.body(body, level + 1);
            }
            StmtKind::Repeat { body, cond } => {
                self.out.push_str("(repeat-until ");
                expr(&mut self.out, cond);
                self.body(body, level + 1);
            }
            StmtKind::ForNum {
                var,
                start,
                end,
                step,
                body,
            } => {
                let _ = write!(self.out, "(for {} ", var.name);
                expr(&mut self.out, start);
                self.out.push(' ');
                expr(&mut self.out, end);
                if let Some(step) = step {
                    self.out.push(' ');
                    expr(&mut self.out, step);
                }
                self.body(body, level + 1);
            }
            StmtKind::ForIn {
                key,
                value,
                iter,
                body,
            } => {
                let _ = write!(self.out, "(for-in ({}", key.name);
                if let Some(v) = value {
                    let _ = write!(self.out, " {}", v.name);
                }
                self.out.push_str(") ");
                expr(&mut self.out, iter);
                self.body(body, level + 1);
            }
            StmtKind::Break => self.out.push_str("(break)"),
            StmtKind::Return(None) => self.out.push_str("(return)"),
            StmtKind::Return(Some(e)) => {
                self.out.push_str("(return ");
                expr(&mut self.out, e);
                self.out.push(')');
            }
            StmtKind::Function(f) => {
                let _ = write!(self.out, "(function {} ", f.name.name);
                self.list(f.params.iter().map(|p| p.name.as_str()));
                self.body(&f.body, level + 1);
            }
        }
    }

    fn pair(&mut self, op: &str, target: &Expr, value: &Expr) {
        let _ = write!(self.out, "({op} ");
        expr(&mut self.out, target);
        self.out.push(' ');
        expr(&mut self.out, value);
        self.out.push(')');
    }

    fn list<'n>(&mut self, names: impl Iterator<Item = &'n str>) {
        self.out.push('(');
        for (i, n) in names.enumerate() {
            if i > 0 {
                self.out.push(' ');
            }
            self.out.push_str(n);
        }
        self.out.push(')');
    }

    fn expr_list(&mut self, exprs: &[Expr]) {
        self.out.push('(');
        for (i, e) in exprs.iter().enumerate() {
            if i > 0 {
                self.out.push(' ');
            }
            expr(&mut self.out, e);
        }
        self.out.push(')');
    }
}

fn expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Nil => out.push_str("nil"),
        ExprKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ExprKind::Number(n) => {
            let _ = write!(out, "{n}");
        }
        ExprKind::Str(bytes) => string(out, bytes),
        ExprKind::Name(n) => out.push_str(n),
        ExprKind::Index { obj, key } => {
            out.push_str("(index ");
            expr(out, obj);
            out.push(' ');
            expr(out, key);
            out.push(')');
        }
        ExprKind::Field { obj, name } => {
            out.push_str("(. ");
            expr(out, obj);
            let _ = write!(out, " {})", name.name);
        }
        ExprKind::Call { callee, args } => {
            out.push_str("(call ");
            expr(out, callee);
            for a in args {
                out.push(' ');
                expr(out, a);
            }
            out.push(')');
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let _ = write!(out, "({} ", op.symbol());
            expr(out, lhs);
            out.push(' ');
            expr(out, rhs);
            out.push(')');
        }
        ExprKind::Unary { op, expr: inner } => {
            out.push_str(match op {
                UnOp::Not => "(! ",
                UnOp::Neg => "(neg ",
                UnOp::BitNot => "(~ ",
            });
            expr(out, inner);
            out.push(')');
        }
        ExprKind::Table(items) => {
            out.push_str("(table");
            for it in items {
                out.push(' ');
                match it {
                    TableItem::Positional(v) => expr(out, v),
                    TableItem::Named(name, v) => {
                        let _ = write!(out, "(= {} ", name.name);
                        expr(out, v);
                        out.push(')');
                    }
                    TableItem::Keyed(k, v) => {
                        out.push_str("(= [");
                        expr(out, k);
                        out.push_str("] ");
                        expr(out, v);
                        out.push(')');
                    }
                }
            }
            out.push(')');
        }
    }
}

/// A string literal in double quotes; bytes outside printable ASCII as escapes.
fn string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

fn event(out: &mut String, ev: &EventDef) {
    let offset = |out: &mut String, off: u64| {
        if off != 0 {
            let _ = write!(out, " +{off}");
        }
    };
    match &ev.kind {
        EventKind::Tracepoint { category, name } => {
            let _ = write!(out, "(tracepoint {category} {name}");
        }
        EventKind::Kprobe {
            symbol,
            offset: off,
            ret,
        } => {
            let _ = write!(
                out,
                "({} {symbol}",
                if *ret { "kretprobe" } else { "kprobe" }
            );
            offset(out, *off);
        }
        EventKind::Uprobe { path, target, ret } => {
            let _ = write!(out, "({} {path}", if *ret { "uretprobe" } else { "uprobe" });
            match target {
                UprobeTarget::Symbol { name, offset: off } => {
                    let _ = write!(out, " {name}");
                    offset(out, *off);
                }
                UprobeTarget::Address(addr) => {
                    let _ = write!(out, " {addr:#x}");
                }
            }
        }
        EventKind::Sdt { path, name } => {
            let _ = write!(out, "(sdt {path} {name}");
        }
        EventKind::Ftrace { tracer } => {
            let _ = write!(out, "(ftrace {tracer}");
        }
    }
    for arg in &ev.fetch_args {
        let _ = write!(out, " (fetch {} ", arg.name);
        match &arg.spec {
            FetchSpec::Reg(r) => {
                let _ = write!(out, "%{r}");
            }
            FetchSpec::Deref { offset, reg } => {
                let _ = write!(out, "{offset:+}(%{reg})");
            }
            FetchSpec::Retval => out.push_str("$retval"),
            FetchSpec::Const(c) => out.push_str(&c.to_string()),
            FetchSpec::Stack(n) => {
                let _ = write!(out, "$stack{n}");
            }
        }
        if let Some(ty) = &arg.ty {
            let _ = write!(out, " {ty}");
        }
        out.push(')');
    }
    out.push(')');
}

fn filter(out: &mut String, f: &FilterExpr) {
    match f {
        FilterExpr::Cmp {
            field, op, value, ..
        } => {
            let op = match op {
                FilterOp::Eq => "==",
                FilterOp::Ne => "!=",
                FilterOp::Lt => "<",
                FilterOp::Le => "<=",
                FilterOp::Gt => ">",
                FilterOp::Ge => ">=",
                FilterOp::Glob => "~",
                FilterOp::BitAnd => "&",
            };
            let _ = write!(out, "({op} {} ", field.name);
            match value {
                FilterValue::Num(n) => {
                    let _ = write!(out, "{n}");
                }
                FilterValue::Str(s) => string(out, s.as_bytes()),
            }
            out.push(')');
        }
        FilterExpr::And(a, b) | FilterExpr::Or(a, b) => {
            out.push_str(if matches!(f, FilterExpr::And(..)) {
                "(&& "
            } else {
                "(|| "
            });
            filter(out, a);
            out.push(' ');
            filter(out, b);
            out.push(')');
        }
        FilterExpr::Not(inner) => {
            out.push_str("(! ");
            filter(out, inner);
            out.push(')');
        }
    }
}
