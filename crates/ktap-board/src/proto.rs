//! What the host and the board say to each other: the plan the host packs into the initramfs,
//! and the marked console lines the board answers with.
//!
//! The board's only channel back is its console, which the kernel also writes to. Every line the
//! board means is `@ktap NONCE WORD ...`, where NONCE is a fresh number the host put on the
//! kernel's command line: a program under test that prints something marker-like cannot forge
//! a result, and a line the kernel cut in two is noticed as missing rather than misread.

/// One command the board runs, with what it needs to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    /// The JIT modes to run it in, from "on" and "off".
    pub modes: Vec<String>,
    pub timeout_ms: u64,
    /// Send SIGINT this long after the start (the Ctrl-C cases).
    pub interrupt_ms: Option<u64>,
    pub argv: Vec<String>,
}

/// The whole plan: the modes in the order the board switches to them, then the steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub modes: Vec<String>,
    pub steps: Vec<Step>,
}

/// Writes the plan as lines: `modes ...`, then per step `step NAME`, `jit ...`, `timeout MS`,
/// `interrupt MS`, one `arg` line per argument (escaped), and `end`.
pub fn write_plan(plan: &Plan) -> String {
    let mut out = format!("modes {}\n", plan.modes.join(" "));
    for s in &plan.steps {
        out += &format!(
            "step {}\njit {}\ntimeout {}\n",
            s.name,
            s.modes.join(" "),
            s.timeout_ms
        );
        if let Some(ms) = s.interrupt_ms {
            out += &format!("interrupt {ms}\n");
        }
        for a in &s.argv {
            out += &format!("arg {}\n", escape(a));
        }
        out += "end\n";
    }
    out
}

/// Reads what `write_plan` wrote.
pub fn read_plan(text: &str) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let mut cur: Option<Step> = None;
    for (n, line) in text.lines().enumerate() {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = || format!("plan line {}: {line:?}", n + 1);
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
        match (word, cur.as_mut()) {
            ("modes", None) => plan.modes = rest.split_whitespace().map(String::from).collect(),
            ("step", None) => {
                cur = Some(Step {
                    name: rest.to_string(),
                    modes: Vec::new(),
                    timeout_ms: 60_000,
                    interrupt_ms: None,
                    argv: Vec::new(),
                })
            }
            ("jit", Some(s)) => s.modes = rest.split_whitespace().map(String::from).collect(),
            ("timeout", Some(s)) => s.timeout_ms = number(rest)?,
            ("interrupt", Some(s)) => s.interrupt_ms = Some(number(rest)?),
            ("arg", Some(s)) => s.argv.push(unescape(rest).ok_or_else(bad)?),
            ("end", Some(_)) => plan.steps.extend(cur.take()),
            _ => return Err(bad()),
        }
    }
    if cur.is_some() {
        return Err("plan ends inside a step".into());
    }
    Ok(plan)
}

/// Makes any text one printable line: backslash, control bytes and non-ASCII become `\xNN`,
/// so that what a program printed survives the console byte for byte.
pub fn escape(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

/// `escape` for bytes that need not be UTF-8.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            out.push(c as char);
        } else {
            out += &format!("\\x{c:02x}");
        }
    }
    out
}

/// `escape` that also hides spaces, for a field that other fields follow.
fn word(s: &str) -> String {
    escape(s).replace(' ', "\\x20")
}

/// Undoes `escape_bytes`; `None` for a malformed escape.
pub fn unescape_bytes(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let hex = s.get(i + 2..i + 4)?;
            if b.get(i + 1) != Some(&b'x') {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Undoes `escape`; `None` for a malformed escape or bytes that are not UTF-8.
pub fn unescape(s: &str) -> Option<String> {
    String::from_utf8(unescape_bytes(s)?).ok()
}

/// What one step's process used (the `usage` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub wall_us: u64,
    pub user_us: u64,
    pub sys_us: u64,
    pub maxrss_kib: u64,
}

/// The marker every meaningful console line starts with.
pub const MARK: &str = "@ktap";

/// A console line from the board, as `report` wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The board is up: kernel release and machine.
    Hello {
        release: String,
        machine: String,
    },
    /// A JIT mode cannot be set on this kernel, and why.
    NoMode {
        mode: String,
        why: String,
    },
    Begin {
        step: String,
        mode: String,
    },
    Out {
        text: String,
    },
    Err {
        text: String,
    },
    /// A step ended: exit code (or -signal), milliseconds, and anything it left in the kernel.
    End {
        rc: i32,
        ms: u64,
        timed_out: bool,
        leftover: String,
    },
    /// What the step's process used, from wait4 once it was reaped, sent just before its
    /// `End`: wall time in µs, user and system CPU time in µs (its reaped children included),
    /// and `ru_maxrss` in KiB (the larger of its own peak and that of the image its exec
    /// replaced, a copy of the board's /init). A host that does not know the line ignores it.
    Usage(Usage),
    /// A file the host asked for (`ktap.dump`), one escaped chunk per line.
    Data {
        text: String,
    },
    Done,
}

/// The console line for `line` under `nonce`.
pub fn report(nonce: &str, line: &Line) -> String {
    let body = match line {
        Line::Hello { release, machine } => format!("hello {} {}", word(release), escape(machine)),
        Line::NoMode { mode, why } => format!("nomode {mode} {}", escape(why)),
        Line::Begin { step, mode } => format!("begin {mode} {step}"),
        Line::Out { text } => format!("out {text}"),
        Line::Err { text } => format!("err {text}"),
        Line::End {
            rc,
            ms,
            timed_out,
            leftover,
        } => format!(
            "end {rc} {ms} {} {}",
            u8::from(*timed_out),
            escape(leftover)
        ),
        Line::Usage(Usage {
            wall_us,
            user_us,
            sys_us,
            maxrss_kib,
        }) => format!("usage {wall_us} {user_us} {sys_us} {maxrss_kib}"),
        Line::Data { text } => format!("data {text}"),
        Line::Done => "done".into(),
    };
    format!("{MARK} {nonce} {body}")
}

/// Reads one console line: `None` unless it is a well-formed line under `nonce`. The marker may
/// follow other text on the same line (a kernel message that did not end its line).
pub fn parse(nonce: &str, console: &str) -> Option<Line> {
    let at = console.find(&format!("{MARK} {nonce} "))?;
    let body = console[at + MARK.len() + nonce.len() + 2..].trim_end_matches(['\r', '\n']);
    let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
    let two = |s: &str| -> Option<(String, String)> {
        let (a, b) = s.split_once(' ')?;
        Some((a.to_string(), b.to_string()))
    };
    Some(match word {
        "hello" => {
            let (r, m) = two(rest)?;
            Line::Hello {
                release: unescape(&r)?,
                machine: unescape(&m)?,
            }
        }
        "nomode" => {
            let (mode, why) = two(rest)?;
            Line::NoMode {
                mode,
                why: unescape(&why)?,
            }
        }
        "begin" => {
            let (mode, step) = two(rest)?;
            Line::Begin { step, mode }
        }
        "out" => Line::Out { text: rest.into() },
        "err" => Line::Err { text: rest.into() },
        "end" => {
            // A console may drop the blanks that end a line, so an empty leftover may be missing.
            let f: Vec<&str> = rest.splitn(4, ' ').collect();
            let (rc, ms, t, left) = match f[..] {
                [rc, ms, t, left] => (rc, ms, t, left),
                [rc, ms, t] => (rc, ms, t, ""),
                _ => return None,
            };
            Line::End {
                rc: rc.parse().ok()?,
                ms: ms.parse().ok()?,
                timed_out: t == "1",
                leftover: unescape(left)?,
            }
        }
        "usage" => {
            let n: Vec<u64> = rest
                .split(' ')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            match n[..] {
                [wall_us, user_us, sys_us, maxrss_kib] => Line::Usage(Usage {
                    wall_us,
                    user_us,
                    sys_us,
                    maxrss_kib,
                }),
                _ => return None,
            }
        }
        "data" => Line::Data { text: rest.into() },
        "done" if rest.is_empty() => Line::Done,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_round_trip() {
        let plan = Plan {
            modes: vec!["off".into(), "on".into()],
            steps: vec![Step {
                name: "x".into(),
                modes: vec!["on".into()],
                timeout_ms: 5,
                interrupt_ms: Some(7),
                argv: vec![
                    "ktap".into(),
                    "-e".into(),
                    "a b\\c\n\u{e9}".into(),
                    String::new(),
                ],
            }],
        };
        assert_eq!(read_plan(&write_plan(&plan)).unwrap(), plan);
        assert!(read_plan("step x\narg a\n").is_err());
        assert!(read_plan("arg a\n").is_err());
    }

    #[test]
    fn lines_round_trip_and_need_the_nonce() {
        let lines = [
            Line::Hello {
                release: "6.1.0-1 x".into(),
                machine: "mips".into(),
            },
            Line::NoMode {
                mode: "off".into(),
                why: "no such file".into(),
            },
            Line::Begin {
                step: "a.b".into(),
                mode: "on".into(),
            },
            Line::Out {
                text: escape("  x \\ y"),
            },
            Line::Err {
                text: String::new(),
            },
            Line::End {
                rc: -9,
                ms: 12,
                timed_out: true,
                leftover: "kprobe_events: p:x y".into(),
            },
            Line::Usage(Usage {
                wall_us: 1_234_567,
                user_us: 0,
                sys_us: 99,
                maxrss_kib: 3072,
            }),
            Line::Data {
                text: "00ff".into(),
            },
            Line::Done,
        ];
        for l in &lines {
            let s = report("42", l);
            assert_eq!(parse("42", &s).as_ref(), Some(l), "{s}");
            assert_eq!(parse("43", &s), None);
            assert_eq!(parse("42", &format!("[ 1.0] cut{s}\r")).as_ref(), Some(l));
        }
        assert_eq!(parse("42", "@ktap 42 end 1 2"), None);
        let end = Line::End {
            rc: 0,
            ms: 5,
            timed_out: false,
            leftover: String::new(),
        };
        assert_eq!(parse("42", "@ktap 42 end 0 5 0"), Some(end));
        assert_eq!(parse("42", "@ktap 42 usage 1 2 3"), None);
        assert_eq!(parse("42", "@ktap 42 usage 1 2 3 4 5"), None);
        assert_eq!(parse("42", "@ktap 42 usage 1 2 x 4"), None);
    }

    #[test]
    fn escapes_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let e = escape_bytes(&all);
        assert!(e.bytes().all(|c| (0x20..0x7f).contains(&c)));
        assert_eq!(unescape_bytes(&e).unwrap(), all);
        assert_eq!(unescape_bytes("\\x4"), None);
        assert_eq!(unescape_bytes("\\y41"), None);
    }
}
