//! Board-test cases (`board-tests/NAME.case`): parsing, and judging what a board printed against
//! what the case expects.
//!
//! A case is `#` comment lines saying what it checks, then sections opened by `-- NAME`:
//! `run` (one command line, words split on blanks; `{script}` is the case's script on the
//! board, `{board}` the directory holding what `host` made), `script` (the file `{script}`
//! names), `host` (commands run on the host first, one per line; `{arch}`, `{desc}` for the
//! board kernel's description, `{script}`, `{board}` for host paths), `stdout` and `stderr`
//! (expected lines: exact, or `~ PATTERN` with `*` for any text and `?` for one character, or
//! `...` for any number of lines; stderr defaults to nothing), `stdout ARCH` (that architecture's
//! different result, whose first line is `# why: ...`), `rc` (default 0), `jit` (the modes, default
//! `on off`), `archs` (`not ARCH: why` lines), `timeout` (seconds, default 120) and `interrupt`
//! (milliseconds after which SIGINT is sent).

use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub run: Vec<String>,
    pub script: Option<String>,
    pub host: Vec<String>,
    pub stdout: Vec<String>,
    /// Per-architecture stdout, with the reason it differs.
    pub stdout_for: BTreeMap<String, (String, Vec<String>)>,
    pub stderr: Vec<String>,
    pub rc: i32,
    pub modes: Vec<String>,
    /// Architectures the case does not run on, with why.
    pub not_on: BTreeMap<String, String>,
    pub timeout_s: u64,
    pub interrupt_ms: Option<u64>,
}

/// The architectures board tests run on, in report order.
pub const ARCHES: [&str; 8] = [
    "x86_64",
    "aarch64",
    "armv7",
    "mipsel",
    "mips64el",
    "powerpc64le",
    "mips",
    "powerpc64",
];

pub fn parse(name: &str, text: &str) -> Result<Case, String> {
    let mut case = Case {
        name: name.to_string(),
        run: Vec::new(),
        script: None,
        host: Vec::new(),
        stdout: Vec::new(),
        stdout_for: BTreeMap::new(),
        stderr: Vec::new(),
        rc: 0,
        modes: vec!["on".into(), "off".into()],
        not_on: BTreeMap::new(),
        timeout_s: 120,
        interrupt_ms: None,
    };
    let mut sections: Vec<(usize, String, Vec<&str>)> = Vec::new();
    let mut commented = false;
    for (n, line) in text.lines().enumerate() {
        if let Some(head) = line.strip_prefix("-- ") {
            sections.push((n + 1, head.trim().to_string(), Vec::new()));
        } else if let Some((_, _, body)) = sections.last_mut() {
            body.push(line);
        } else if line.starts_with('#') {
            commented = true;
        } else if !line.trim().is_empty() {
            return Err(format!(
                "{name}:{}: text before the first `-- SECTION`",
                n + 1
            ));
        }
    }
    if !commented {
        return Err(format!(
            "{name}: a case starts with `#` lines saying what it checks"
        ));
    }
    let mut seen = Vec::new();
    for (line, head, mut body) in sections {
        let at = |msg: String| format!("{name}:{line}: {msg}");
        if seen.contains(&head) {
            return Err(at(format!("`-- {head}` appears twice")));
        }
        seen.push(head.clone());
        // Blank lines closing a section separate it from the next and are not part of it.
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        let one = |body: &[&str]| match body {
            [v] => Ok(v.trim().to_string()),
            _ => Err(at(format!("`-- {head}` takes one line"))),
        };
        let lines = |body: &[&str]| body.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let (word, arg) = head.split_once(' ').unwrap_or((&head, ""));
        match (word, arg) {
            ("run", "") => case.run = one(&body)?.split_whitespace().map(String::from).collect(),
            ("script", "") => case.script = Some(lines(&body).join("\n") + "\n"),
            ("host", "") => case.host = lines(&body),
            ("stdout", "") => case.stdout = lines(&body),
            ("stdout", arch) => {
                if !ARCHES.contains(&arch) {
                    return Err(at(format!("unknown architecture `{arch}`")));
                }
                let why = body
                    .first()
                    .and_then(|l| l.strip_prefix("# why: "))
                    .ok_or_else(|| {
                        at("an architecture's own result starts with `# why: ...`".into())
                    })?;
                case.stdout_for
                    .insert(arch.into(), (why.to_string(), lines(&body[1..])));
            }
            ("stderr", "") => case.stderr = lines(&body),
            ("rc", "") => {
                case.rc = one(&body)?
                    .parse()
                    .map_err(|_| at("`-- rc` is a number".into()))?
            }
            ("jit", "") => {
                case.modes = one(&body)?.split_whitespace().map(String::from).collect();
                if case.modes.is_empty() || case.modes.iter().any(|m| m != "on" && m != "off") {
                    return Err(at("`-- jit` lists `on`, `off` or both".into()));
                }
            }
            ("archs", "") => {
                for l in body {
                    let (arch, why) = l
                        .strip_prefix("not ")
                        .and_then(|r| r.split_once(": "))
                        .ok_or_else(|| at(format!("`{l}`: write `not ARCH: why`")))?;
                    if !ARCHES.contains(&arch) {
                        return Err(at(format!("unknown architecture `{arch}`")));
                    }
                    case.not_on.insert(arch.into(), why.into());
                }
            }
            ("timeout", "") => {
                case.timeout_s = one(&body)?
                    .parse()
                    .map_err(|_| at("seconds, a number".into()))?
            }
            ("interrupt", "") => {
                case.interrupt_ms = Some(
                    one(&body)?
                        .parse()
                        .map_err(|_| at("milliseconds, a number".into()))?,
                )
            }
            _ => return Err(at(format!("unknown section `-- {head}`"))),
        }
    }
    if case.run.is_empty() {
        return Err(format!("{name}: no `-- run` command"));
    }
    let uses_script = case
        .run
        .iter()
        .chain(&case.host)
        .any(|a| a.contains("{script}"));
    if uses_script != case.script.is_some() {
        return Err(format!("{name}: `-- script` and `{{script}}` go together"));
    }
    Ok(case)
}

/// What the board reported for one step in one mode.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub rc: i32,
    pub ms: u64,
    pub timed_out: bool,
    pub leftover: String,
    /// The board's `usage` line for the step, when it sent one.
    pub usage: Option<crate::proto::Usage>,
}

/// Why `got` is not what `case` expects on `arch`, or `None` when it is.
pub fn judge(case: &Case, arch: &str, got: &Outcome) -> Option<String> {
    let mut why = Vec::new();
    if got.timed_out {
        why.push(format!(
            "did not end within {} s and was killed",
            case.timeout_s
        ));
    } else if got.rc != case.rc {
        why.push(format!("exit code {} (expected {})", got.rc, case.rc));
    }
    let stdout = case.stdout_for.get(arch).map_or(&case.stdout, |(_, l)| l);
    if let Some(d) = differ(stdout, &got.stdout) {
        why.push(format!("stdout {d}"));
    }
    if let Some(d) = differ(&case.stderr, &got.stderr) {
        why.push(format!("stderr {d}"));
    }
    if !got.leftover.is_empty() {
        why.push(format!("left in the kernel: {}", got.leftover));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Where the lines `got` stop matching `want`, as a sentence.
fn differ(want: &[String], got: &[String]) -> Option<String> {
    if lines_match(want, got) {
        return None;
    }
    // The first line that cannot be matched in order is the most useful thing to show.
    let mut first = 0;
    while first < want.len() && first < got.len() && line_matches(&want[first], &got[first]) {
        first += 1;
    }
    Some(match (want.get(first), got.get(first)) {
        (Some(w), Some(g)) => format!("line {}: expected `{w}`, got `{g}`", first + 1),
        (Some(w), None) => format!("ends after {} lines; expected `{w}` next", got.len()),
        (None, Some(g)) => format!(
            "has more lines than expected, from line {}: `{g}`",
            first + 1
        ),
        (None, None) => "differs".to_string(),
    })
}

/// Whether every line matches in order, `...` standing for any number of lines.
pub fn lines_match(want: &[String], got: &[String]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((w, rest)) if w == "..." => {
            (0..=got.len()).any(|skip| lines_match(rest, &got[skip..]))
        }
        Some((w, rest)) => got
            .split_first()
            .is_some_and(|(g, grest)| line_matches(w, g) && lines_match(rest, grest)),
    }
}

fn line_matches(want: &str, got: &str) -> bool {
    match want.strip_prefix("~ ") {
        Some(pattern) => glob(pattern.as_bytes(), got.as_bytes()),
        None => want == got,
    }
}

/// `*` matches any run of characters, `?` any one; everything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((&c, rest)) => s
            .split_first()
            .is_some_and(|(&d, srest)| (c == b'?' || c == d) && glob(rest, srest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_every_section() {
        let c = parse(
            "t",
            "# checks x\n-- run\nktap -q {script} -- ktap-workload getppid 3\n\n-- script\na\n\nb\n\n\
             -- stdout\n~ n=*\n...\n-- stdout mips64el\n# why: n64\nz\n-- rc\n1\n-- jit\non\n\
             -- archs\nnot mips: no kernel\n-- timeout\n5\n-- interrupt\n100\n",
        )
        .unwrap();
        assert_eq!(
            c.run,
            v(&[
                "ktap",
                "-q",
                "{script}",
                "--",
                "ktap-workload",
                "getppid",
                "3"
            ])
        );
        assert_eq!(c.script.as_deref(), Some("a\n\nb\n"));
        assert_eq!(c.stdout, v(&["~ n=*", "..."]));
        assert_eq!(c.stdout_for["mips64el"], ("n64".to_string(), v(&["z"])));
        assert_eq!((c.rc, c.timeout_s, c.interrupt_ms), (1, 5, Some(100)));
        assert_eq!(c.modes, v(&["on"]));
        assert_eq!(c.not_on["mips"], "no kernel");
    }

    #[test]
    fn refuses_malformed_cases() {
        for (text, msg) in [
            ("-- run\nx\n", "starts with `#`"),
            ("# c\nx\n-- run\nx\n", "before the first"),
            ("# c\n-- run\nx\n-- run\ny\n", "twice"),
            ("# c\n-- run\nx\n-- nope\n", "unknown section"),
            ("# c\n-- run\nx {script}\n", "go together"),
            ("# c\n-- run\nx\n-- stdout vax\n", "unknown architecture"),
            ("# c\n-- run\nx\n-- stdout mips\nz\n", "# why"),
            ("# c\n-- run\nx\n-- archs\nmips\n", "not ARCH"),
            ("# c\n-- run\nx\n-- jit\nfast\n", "`on`, `off`"),
            ("# c\n-- stdout\n", "no `-- run`"),
        ] {
            let e = parse("t", text).unwrap_err();
            assert!(e.contains(msg), "{text:?}: {e}");
        }
    }

    #[test]
    fn matches_lines_patterns_and_gaps() {
        let got = v(&["a 1", "b", "c", "d 22"]);
        assert!(lines_match(&v(&["a 1", "b", "c", "d 22"]), &got));
        assert!(lines_match(&v(&["~ a ?", "...", "~ d *"]), &got));
        assert!(lines_match(&v(&["...", "d 22"]), &got));
        assert!(lines_match(
            &v(&["a 1", "...", "b", "c", "...", "d 22", "..."]),
            &got
        ));
        assert!(!lines_match(&v(&["a 1", "b"]), &got));
        assert!(!lines_match(&v(&["~ a ??", "..."]), &got));
        assert!(!lines_match(&v(&["...", "e"]), &got));
        assert!(lines_match(&[], &[]));
        assert!(!lines_match(&[], &v(&[""])));
    }

    #[test]
    fn judging_names_what_differs() {
        let c = parse("t", "# c\n-- run\nx\n-- stdout\nok\n").unwrap();
        let good = Outcome {
            stdout: v(&["ok"]),
            ..Outcome::default()
        };
        assert_eq!(judge(&c, "mips", &good), None);
        let bad = Outcome {
            stdout: v(&["no"]),
            stderr: v(&["boom"]),
            rc: 2,
            leftover: "1 BPF programs".into(),
            ..Outcome::default()
        };
        let why = judge(&c, "mips", &bad).unwrap();
        for part in [
            "exit code 2",
            "expected `ok`, got `no`",
            "stderr has more",
            "left in the kernel",
        ] {
            assert!(why.contains(part), "{why}");
        }
        let late = Outcome {
            timed_out: true,
            ..good
        };
        assert!(judge(&c, "mips", &late).unwrap().contains("killed"));
    }
}

#[cfg(test)]
mod the_cases {
    /// Every case in board-tests/ parses, and there are enough of them for each board.
    #[test]
    fn board_tests_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../board-tests");
        let cases = crate::host::load_cases(std::path::Path::new(dir), None).unwrap();
        for arch in super::ARCHES {
            let n = cases
                .iter()
                .filter(|c| !c.not_on.contains_key(arch))
                .count();
            assert!(n >= 15, "{arch}: {n} cases");
        }
    }
}
