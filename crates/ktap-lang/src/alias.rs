//! Names for built-in functions: `var format_ip_addr = net.format_ip_addr` at top level, as
//! ktap's samples write it, then `format_ip_addr(x)`. Functions are not values in this
//! compiler (every call is resolved and inlined at compile time), so [`resolve`] rewrites such
//! a name's calls into calls of the built-in and drops the declaration, before type checking.
//!
//! Only a name that is declared once, at top level, and used for nothing but calls is
//! rewritten; any other use leaves the script as written, so the checker reports it.

use crate::ast::*;
use crate::types::{callee_name, BUILTIN_FUNCS};
use std::collections::HashMap;

/// Rewrites the calls of every top-level name that stands for a built-in function.
pub fn resolve(script: &mut Script) {
    let mut aliases: HashMap<String, ExprKind> = HashMap::new();
    for item in &script.items {
        let Item::Stmt(Stmt {
            kind: StmtKind::Var { names, values },
            ..
        }) = item
        else {
            continue;
        };
        for (n, v) in names.iter().zip(values) {
            let builtin = callee_name(v)
                .is_some_and(|b| b.contains('.') && BUILTIN_FUNCS.contains(&b.as_str()));
            if builtin && aliases.insert(n.name.clone(), v.kind.clone()).is_some() {
                // Declared twice: not a plain name for one function.
                aliases.insert(n.name.clone(), ExprKind::Nil);
            }
        }
    }
    aliases.retain(|_, k| !matches!(k, ExprKind::Nil));
    if aliases.is_empty() {
        return;
    }
    // Any use of a name other than as a callee, and any other binding of it, keeps it as is.
    let mut other = HashMap::new();
    visit_script(script, &mut |e, callee| {
        if let ExprKind::Name(n) = &e.kind {
            if !callee {
                *other.entry(n.clone()).or_insert(0) += 1;
            }
        }
    });
    for_each_binding(script, &mut |n| {
        *other.entry(n.to_string()).or_insert(0) += 1
    });
    // Each alias's own declaration is one binding.
    aliases.retain(|n, _| other.get(n) == Some(&1));
    if aliases.is_empty() {
        return;
    }
    for item in &mut script.items {
        if let Item::Stmt(Stmt {
            kind: StmtKind::Var { names, values },
            ..
        }) = item
        {
            let keep: Vec<bool> = names
                .iter()
                .map(|n| !aliases.contains_key(&n.name))
                .collect();
            let mut k = keep.iter();
            names.retain(|_| *k.next().unwrap_or(&true));
            let mut i = 0;
            values.retain(|_| {
                i += 1;
                *keep.get(i - 1).unwrap_or(&true)
            });
        }
    }
    script.items.retain(|item| {
        !matches!(item, Item::Stmt(Stmt { kind: StmtKind::Var { names, .. }, .. }) if names.is_empty())
    });
    visit_script(script, &mut |e, callee| {
        if let (true, ExprKind::Name(n)) = (callee, &e.kind) {
            if let Some(k) = aliases.get(n) {
                e.kind = k.clone();
            }
        }
    });
}

/// Every name a declaration binds: `var`, parameters, loop variables, functions.
fn for_each_binding(script: &Script, f: &mut dyn FnMut(&str)) {
    fn block(b: &Block, f: &mut dyn FnMut(&str)) {
        b.stmts.iter().for_each(|s| stmt(s, f));
    }
    fn stmt(s: &Stmt, f: &mut dyn FnMut(&str)) {
        match &s.kind {
            StmtKind::Var { names, .. } => names.iter().for_each(|n| f(&n.name)),
            StmtKind::If { arms, otherwise } => {
                arms.iter().for_each(|(_, b)| block(b, f));
                if let Some(b) = otherwise {
                    block(b, f);
                }
            }
            StmtKind::While { body, .. } | StmtKind::Repeat { body, .. } => block(body, f),
            StmtKind::ForNum { var, body, .. } => {
                f(&var.name);
                block(body, f);
            }
            StmtKind::ForIn {
                key, value, body, ..
            } => {
                f(&key.name);
                if let Some(v) = value {
                    f(&v.name);
                }
                block(body, f);
            }
            StmtKind::Function(d) => {
                f(&d.name.name);
                d.params.iter().for_each(|p| f(&p.name));
                block(&d.body, f);
            }
            _ => {}
        }
    }
    for item in &script.items {
        match item {
            Item::Stmt(s) => stmt(s, f),
            Item::Trace(t) => block(&t.body, f),
            Item::TraceEnd { body, .. } | Item::Tick { body, .. } | Item::Profile { body, .. } => {
                block(body, f)
            }
        }
    }
}

/// Calls `f` on every expression of the script, with whether it is a call's callee.
fn visit_script(script: &mut Script, f: &mut dyn FnMut(&mut Expr, bool)) {
    for item in &mut script.items {
        match item {
            Item::Stmt(s) => visit_stmt(s, f),
            Item::Trace(t) => visit_block(&mut t.body, f),
            Item::TraceEnd { body, .. } | Item::Tick { body, .. } | Item::Profile { body, .. } => {
                visit_block(body, f)
            }
        }
    }
}

fn visit_block(b: &mut Block, f: &mut dyn FnMut(&mut Expr, bool)) {
    b.stmts.iter_mut().for_each(|s| visit_stmt(s, f));
}

fn visit_stmt(s: &mut Stmt, f: &mut dyn FnMut(&mut Expr, bool)) {
    match &mut s.kind {
        StmtKind::Var { values, .. } => values.iter_mut().for_each(|e| visit_expr(e, false, f)),
        StmtKind::Assign { targets, values } => targets
            .iter_mut()
            .chain(values.iter_mut())
            .for_each(|e| visit_expr(e, false, f)),
        StmtKind::AddAssign { target, value } | StmtKind::Aggregate { target, value } => {
            visit_expr(target, false, f);
            visit_expr(value, false, f);
        }
        StmtKind::Expr(e) => visit_expr(e, false, f),
        StmtKind::If { arms, otherwise } => {
            for (c, b) in arms {
                visit_expr(c, false, f);
                visit_block(b, f);
            }
            if let Some(b) = otherwise {
                visit_block(b, f);
            }
        }
        StmtKind::While { cond, body } | StmtKind::Repeat { body, cond } => {
            visit_expr(cond, false, f);
            visit_block(body, f);
        }
        StmtKind::ForNum {
            start,
            end,
            step,
            body,
            ..
        } => {
            visit_expr(start, false, f);
            visit_expr(end, false, f);
            if let Some(s) = step {
                visit_expr(s, false, f);
            }
            visit_block(body, f);
        }
        StmtKind::ForIn { iter, body, .. } => {
            visit_expr(iter, false, f);
            visit_block(body, f);
        }
        StmtKind::Return(Some(e)) => visit_expr(e, false, f),
        StmtKind::Function(d) => visit_block(&mut d.body, f),
        StmtKind::Break | StmtKind::Return(None) => {}
    }
}

fn visit_expr(e: &mut Expr, callee: bool, f: &mut dyn FnMut(&mut Expr, bool)) {
    f(e, callee);
    match &mut e.kind {
        ExprKind::Index { obj, key } => {
            visit_expr(obj, false, f);
            visit_expr(key, false, f);
        }
        ExprKind::Field { obj, .. } => visit_expr(obj, false, f),
        ExprKind::Call { callee, args } => {
            visit_expr(callee, true, f);
            args.iter_mut().for_each(|a| visit_expr(a, false, f));
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            visit_expr(lhs, false, f);
            visit_expr(rhs, false, f);
        }
        ExprKind::Unary { expr, .. } => visit_expr(expr, false, f),
        ExprKind::Table(items) => {
            for it in items {
                match it {
                    TableItem::Positional(v) | TableItem::Named(_, v) => visit_expr(v, false, f),
                    TableItem::Keyed(k, v) => {
                        visit_expr(k, false, f);
                        visit_expr(v, false, f);
                    }
                }
            }
        }
        ExprKind::Nil
        | ExprKind::Bool(_)
        | ExprKind::Number(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_) => {}
    }
}
