//! Golden tests of the front end. Every `test_data/parse/ok/NAME.kp` must parse, and its dump
//! must equal `NAME.out`; every `test_data/parse/err/NAME.kp` must fail, and its rendered
//! diagnostics must equal `NAME.err`. With `BLESS=1` the expected files are rewritten instead.
//! A missing expected file, or one without its script, is a failure unless blessing.
//! Also here: no input, however broken, makes the parser panic.

use ktap_bpf::Source;
use ktap_lang::{diag, parser, pretty};
use std::fs;
use std::path::{Path, PathBuf};

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/parse")
        .join(kind)
}

fn blessing() -> bool {
    std::env::var_os("BLESS").is_some_and(|v| v == "1")
}

/// Files of `dir` whose name ends with `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

fn source_of(path: &Path) -> Source {
    Source {
        name: path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned(),
        text: fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    }
}

/// Runs every case of `kind` (`ok` or `err`) through `run`, which gives the actual output or a
/// failure; compares with (or blesses) the expected file of extension `ext`. Reports all
/// failures at once.
fn golden(kind: &str, ext: &str, run: impl Fn(&Source) -> Result<String, String>) {
    let dir = data_dir(kind);
    let bless = blessing();
    let mut failures = Vec::new();
    let scripts = files(&dir, "kp");
    for script in &scripts {
        let source = source_of(script);
        let expected_path = script.with_extension(ext);
        let actual = match run(&source) {
            Ok(actual) => actual,
            Err(why) => {
                failures.push(format!("{}: {why}", source.name));
                continue;
            }
        };
        if bless {
            fs::write(&expected_path, &actual).expect("write expected file");
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}: output differs from {}\n--- expected\n{expected}--- actual\n{actual}",
                source.name,
                expected_path.display()
            )),
            Err(_) => failures.push(format!(
                "{}: missing {} (run with BLESS=1 to create it)\n--- actual\n{actual}",
                source.name,
                expected_path.display()
            )),
        }
    }
    for expected in files(&dir, ext) {
        if !expected.with_extension("kp").exists() {
            failures.push(format!(
                "{}: no script for this expected file",
                expected.display()
            ));
        }
    }
    assert!(!scripts.is_empty(), "no cases in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {} {kind} cases failed:\n\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n\n")
    );
}

#[test]
fn ok_cases() {
    golden("ok", "out", |source| match parser::parse(source) {
        Ok(script) => Ok(pretty::dump(&script)),
        Err(diags) => Err(format!(
            "expected to parse, but:\n{}",
            diag::render_all(&diags, source)
        )),
    });
}

#[test]
fn err_cases() {
    golden("err", "err", |source| match parser::parse(source) {
        Ok(script) => Err(format!(
            "expected errors, but it parsed:\n{}",
            pretty::dump(&script)
        )),
        Err(diags) => Ok(diag::render_all(&diags, source)),
    });
}

/// A small deterministic generator (xorshift64), so failures reproduce without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses `text` and renders whatever comes out; only a panic fails.
fn parse_anything(text: &str) {
    let source = Source {
        name: "fuzz.kp".into(),
        text: text.into(),
    };
    match parser::parse(&source) {
        Ok(script) => {
            pretty::dump(&script);
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            diag::render_all(&diags, &source);
        }
    }
}

#[test]
fn never_panics() {
    let mut corpus: Vec<String> = Vec::new();
    for kind in ["ok", "err"] {
        for script in files(&data_dir(kind), "kp") {
            corpus.push(source_of(&script).text);
        }
    }
    // Every prefix of every case: unterminated everything, at every position.
    for text in &corpus {
        for (i, _) in text.char_indices() {
            parse_anything(&text[..i]);
        }
    }
    // Random edits: delete, duplicate or insert characters and fragments that the lexer and
    // the probe-header reader treat specially.
    const PIECES: [&str; 32] = [
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "[[",
        "]]",
        "--[[",
        "/",
        ",",
        "=",
        "%",
        "$",
        ":",
        "\n",
        "trace ",
        "tick-",
        "probe:",
        "0x",
        "99999999999999999999",
        "\\",
        "é",
        "<<<",
        "..",
        "#",
        "if ",
        "else",
        "\u{0}",
        " ",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let mut text: Vec<char> = corpus[rng.below(corpus.len())].chars().collect();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(text.len() + 1);
            match rng.below(3) {
                0 if at < text.len() => {
                    let len = (1 + rng.below(8)).min(text.len() - at);
                    text.drain(at..at + len);
                }
                1 if at < text.len() => {
                    let len = (1 + rng.below(16)).min(text.len() - at);
                    let copy: Vec<char> = text[at..at + len].to_vec();
                    text.splice(at..at, copy);
                }
                _ => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    text.splice(at..at, piece.chars());
                }
            }
        }
        parse_anything(&text.iter().collect::<String>());
    }
}
