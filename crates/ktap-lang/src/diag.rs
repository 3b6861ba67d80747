//! Diagnostics: one collector for every stage, rendered as `file:line:col: error: message`,
//! the source line, and carets under the span.

use ktap_bpf::{Source, Span};
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Note,
}

/// One message about one place in the script, with optional notes about other places.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub message: String,
    pub span: Span,
    /// Secondary places (`note: ...`), e.g. the other assignment in a type conflict.
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Error,
            message: message.into(),
            span,
            notes: Vec::new(),
        }
    }

    /// Adds a note pointing at another place.
    pub fn with_note(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.notes.push((span, message.into()));
        self
    }

    /// Renders this diagnostic against the script it is about.
    pub fn render(&self, source: &Source) -> String {
        let mut out = String::new();
        let label = match self.level {
            Level::Error => "error",
            Level::Note => "note",
        };
        render_one(&mut out, source, self.span, label, &self.message);
        for (span, note) in &self.notes {
            render_one(&mut out, source, *span, "note", note);
        }
        out
    }
}

fn render_one(out: &mut String, source: &Source, span: Span, label: &str, message: &str) {
    let (line, col) = source.line_col(span.lo);
    let _ = writeln!(
        out,
        "{}:{}:{}: {}: {}",
        source.name, line, col, label, message
    );
    let text = source.line_text(line);
    let _ = writeln!(out, "{}", text);
    // Carets cover the span, clipped to the first line it touches, at least one.
    let (end_line, end_col) = source.line_col(span.hi);
    let width = if end_line == line {
        end_col.saturating_sub(col).max(1)
    } else {
        (text.chars().count() + 1).saturating_sub(col).max(1)
    };
    let pad: String = text
        .chars()
        .take(col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{}{}", pad, "^".repeat(width));
}

/// Renders several diagnostics, in order.
pub fn render_all(diags: &[Diagnostic], source: &Source) -> String {
    diags.iter().map(|d| d.render(source)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_under_the_span() {
        let src = Source {
            name: "x.kp".into(),
            text: "var a = 1\n\tprint(b)\n".into(),
        };
        let d = Diagnostic::error(Span::new(17, 18), "unknown variable `b`")
            .with_note(Span::new(4, 5), "did you mean `a`?");
        assert_eq!(
            d.render(&src),
            "x.kp:2:8: error: unknown variable `b`\n\tprint(b)\n\t      ^\n\
             x.kp:1:5: note: did you mean `a`?\nvar a = 1\n    ^\n"
        );
    }
}
