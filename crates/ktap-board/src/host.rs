//! The host's side: packs the initramfs for one architecture, boots it under qemu-system with a
//! watchdog, reads the board's marked console lines and judges every case, ending with the line
//! `board-test ARCH: N passed, M failed`.

use crate::bench;
use crate::case::{self, Case, Outcome};
use crate::cpio::{Archive, Kind};
use crate::proto::{self, Line, Plan, Step};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What `run` and `shell` are given on the command line.
pub struct Config {
    pub arch: String,
    pub kernel: PathBuf,
    /// The target's ktap, ktap-board and ktap-workload binaries.
    pub ktap: PathBuf,
    pub board: PathBuf,
    pub workload: PathBuf,
    /// This machine's ktap, for `ktapc` in a case's `-- host` lines.
    pub host_ktap: PathBuf,
    pub cases: PathBuf,
    /// The project's samples, packed as /board/samples for cases that run them.
    pub samples: PathBuf,
    pub targets: PathBuf,
    /// Where the console logs and the host's products go.
    pub work: PathBuf,
    /// Only the cases whose names contain this, or one of its comma-separated parts.
    pub only: Option<String>,
    /// `bench`: how many rounds, and how many getppid calls the big workload makes.
    pub rounds: usize,
    pub events: u64,
}

/// How long a board may take to boot and report its first line, under TCG.
const BOOT_S: u64 = 120;
/// How long past a step's own timeout the host waits for its end before calling the board hung
/// (the board kills the step at its timeout and reports it).
const GRACE_S: u64 = 60;

pub fn run(cfg: &Config) -> Result<bool, String> {
    let cases = load_cases(&cfg.cases, cfg.only.as_deref())?;
    let arch = cfg.arch.as_str();
    let work = cfg.work.join(arch);
    let made = work.join("board");
    let _ = fs::remove_dir_all(&made);
    fs::create_dir_all(&made).map_err(|e| format!("{}: {e}", made.display()))?;
    let (runs, skipped): (Vec<&Case>, Vec<&Case>) =
        cases.iter().partition(|c| !c.not_on.contains_key(arch));
    for c in &skipped {
        println!(
            "board-test {arch}: {} not run here: {}",
            c.name, c.not_on[arch]
        );
    }
    if runs.iter().any(|c| !c.host.is_empty()) {
        let desc = made.join("kernel.desc");
        fs::write(&desc, describe_board(cfg, &work)?)
            .map_err(|e| format!("{}: {e}", desc.display()))?;
        for c in &runs {
            host_steps(cfg, c, &made)?;
        }
    }
    let plan = Plan {
        modes: vec!["on".into(), "off".into()],
        steps: runs
            .iter()
            .map(|c| Step {
                name: c.name.clone(),
                modes: c.modes.clone(),
                timeout_ms: c.timeout_s * 1000,
                interrupt_ms: c.interrupt_ms,
                argv: c.run.iter().map(|a| board_arg(a, c)).collect(),
            })
            .collect(),
    };
    let initrd = work.join("initrd.gz");
    pack(cfg, &plan, &runs, &made, &initrd)?;
    let timeouts: BTreeMap<String, u64> =
        runs.iter().map(|c| (c.name.clone(), c.timeout_s)).collect();
    let log = work.join("console.log");
    let board = boot(cfg, &initrd, "run", &log, &timeouts)?;
    let mut passed = 0;
    let mut failed = 0;
    let no_mode: BTreeMap<&str, &str> = board
        .no_mode
        .iter()
        .map(|(m, w)| (m.as_str(), w.as_str()))
        .collect();
    for (mode, why) in &no_mode {
        println!("board-test {arch}: no JIT-{mode} runs on this kernel: {why}");
    }
    for c in &runs {
        for mode in c.modes.iter().filter(|m| !no_mode.contains_key(m.as_str())) {
            let verdict = match board.outcomes.get(&(c.name.clone(), mode.clone())) {
                Some(got) => case::judge(c, arch, got).map(|why| (why, Some(got))),
                None => Some((board.missing_reason(&c.name, mode), None)),
            };
            match verdict {
                None => passed += 1,
                Some((why, got)) => {
                    failed += 1;
                    println!("FAIL {arch} {} (jit {mode}): {why}", c.name);
                    if let Some(got) = got {
                        show("stdout", &got.stdout);
                        show("stderr", &got.stderr);
                    }
                }
            }
        }
    }
    if !board.done || failed > 0 && board.outcomes.is_empty() {
        println!(
            "--- console of {arch} (last 60 lines; whole log in {}):",
            log.display()
        );
        for l in board.console.iter().rev().take(60).rev() {
            println!("  {l}");
        }
        if !board.done {
            failed += 1;
            println!("FAIL {arch}: {}", board.end);
        }
    }
    println!("board-test {arch}: {passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// `make bench-board`: the bench plan in one boot, then the table of its figures.
pub fn bench(cfg: &Config) -> Result<bool, String> {
    let arch = cfg.arch.as_str();
    let work = cfg.work.join(arch);
    let made = work.join("bench");
    let _ = fs::remove_dir_all(&made);
    fs::create_dir_all(&made).map_err(|e| format!("{}: {e}", made.display()))?;
    let plan = bench::plan(cfg.rounds, cfg.events);
    let initrd = work.join("initrd-bench.gz");
    pack(cfg, &plan, &[], &made, &initrd)?;
    let timeouts: BTreeMap<String, u64> = plan
        .steps
        .iter()
        .map(|s| (s.name.clone(), bench::STEP_TIMEOUT_S))
        .collect();
    let log = work.join("console-bench.log");
    let started = Instant::now();
    let board = boot(cfg, &initrd, "run", &log, &timeouts)?;
    let (figs, problems) = bench::figures(&board.outcomes, cfg.rounds, cfg.events);
    println!(
        "bench-board {arch}: kernel {}, {} rounds (JIT on), N = {} getppid calls, {:.0} s in all",
        board.release,
        cfg.rounds,
        cfg.events,
        started.elapsed().as_secs_f64()
    );
    println!();
    print!("{}", bench::table(&figs));
    for p in &problems {
        println!("FAIL {arch} bench {p}");
    }
    if let Some((m, why)) = board.no_mode.first() {
        println!("FAIL {arch} bench: no JIT-{m} on this kernel: {why}");
    }
    if !board.done {
        println!(
            "--- console of {arch} (last 40 lines; whole log in {}):",
            log.display()
        );
        for l in board.console.iter().rev().take(40).rev() {
            println!("  {l}");
        }
        println!("FAIL {arch} bench: {}", board.end);
    }
    Ok(board.done && problems.is_empty() && board.no_mode.is_empty())
}

fn show(what: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("  {what}:");
    for l in lines.iter().take(30) {
        println!("    {l}");
    }
    if lines.len() > 30 {
        println!("    ... ({} lines in all)", lines.len());
    }
}

/// `make board-shell`: the same board with a prompt on this terminal.
pub fn shell(cfg: &Config) -> Result<(), String> {
    let work = cfg.work.join(&cfg.arch);
    let made = work.join("board");
    fs::create_dir_all(&made).map_err(|e| format!("{}: {e}", made.display()))?;
    let initrd = work.join("initrd-shell.gz");
    pack(cfg, &Plan::default(), &[], &made, &initrd)?;
    let mut cmd = qemu(cfg, &initrd, "shell", "0")?;
    let st = cmd
        .status()
        .map_err(|e| format!("{}: {e}", qemu_name(cfg)))?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("qemu ended with {st}"))
}

pub fn load_cases(dir: &Path, only: Option<&str>) -> Result<Vec<Case>, String> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .collect();
    names.sort();
    let mut cases = Vec::new();
    for p in names {
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if only.is_some_and(|o| !o.split(',').any(|part| name.contains(part))) {
            continue;
        }
        let text = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        cases.push(case::parse(&name, &text)?);
    }
    if cases.is_empty() {
        return Err(format!("no cases in {}", dir.display()));
    }
    Ok(cases)
}

fn board_arg(a: &str, c: &Case) -> String {
    a.replace("{script}", &format!("/board/{}.kp", c.name))
        .replace("{board}", "/board")
}

/// Runs a case's `-- host` lines: `ktapc ...` with this machine's ktap, placeholders filled.
fn host_steps(cfg: &Config, c: &Case, made: &Path) -> Result<(), String> {
    if c.host.is_empty() {
        return Ok(());
    }
    let script = made.join(format!("{}.kp", c.name));
    if let Some(text) = &c.script {
        fs::write(&script, text).map_err(|e| format!("{}: {e}", script.display()))?;
    }
    for line in &c.host {
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                w.replace("{arch}", &cfg.arch)
                    .replace("{desc}", &made.join("kernel.desc").to_string_lossy())
                    .replace("{script}", &script.to_string_lossy())
                    .replace("{board}", &made.to_string_lossy())
            })
            .collect();
        if words.first().map(String::as_str) != Some("ktapc") {
            return Err(format!(
                "{}: a `-- host` line runs ktapc, not `{line}`",
                c.name
            ));
        }
        let out = Command::new(&cfg.host_ktap)
            .args(&words)
            .output()
            .map_err(|e| format!("{}: {e}", cfg.host_ktap.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{}: `{line}` failed on the host: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// Boots the board once in `ktap.mode=dump` for its kernel description.
fn describe_board(cfg: &Config, work: &Path) -> Result<Vec<u8>, String> {
    let initrd = work.join("initrd-dump.gz");
    let made = work.join("board");
    pack(cfg, &Plan::default(), &[], &made, &initrd)?;
    let log = work.join("console-dump.log");
    let board = boot(cfg, &initrd, "dump", &log, &BTreeMap::new())?;
    if !board.done || board.data.is_empty() {
        let tail: Vec<&String> = board.console.iter().rev().take(40).rev().collect();
        return Err(format!(
            "{}: no kernel description from the board ({}); console:\n  {}",
            cfg.arch,
            board.end,
            tail.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    let hex: String = board.data.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| format!("{}: a damaged kernel description on the console", cfg.arch))
}

/// Writes the initramfs: /init (ktap-board), /bin with ktap, its applet links and the workload,
/// /board with the plan, the scripts and whatever the host made.
fn pack(cfg: &Config, plan: &Plan, cases: &[&Case], made: &Path, out: &Path) -> Result<(), String> {
    let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut a = Archive::default();
    for d in ["bin", "board", "dev", "proc", "sys", "tmp"] {
        a.add(d, Kind::Dir);
    }
    a.add("dev/console", Kind::CharDev { major: 5, minor: 1 });
    a.add(
        "init",
        Kind::File {
            data: &read(&cfg.board)?,
            exec: true,
        },
    );
    a.add(
        "bin/ktap",
        Kind::File {
            data: &read(&cfg.ktap)?,
            exec: true,
        },
    );
    a.add(
        "bin/ktap-workload",
        Kind::File {
            data: &read(&cfg.workload)?,
            exec: true,
        },
    );
    for applet in applets(&cfg.host_ktap)? {
        a.add(&format!("bin/{applet}"), Kind::Symlink { target: "ktap" });
    }
    a.add(
        "board/plan",
        Kind::File {
            data: proto::write_plan(plan).as_bytes(),
            exec: false,
        },
    );
    for c in cases {
        if let Some(text) = &c.script {
            a.add(
                &format!("board/{}.kp", c.name),
                Kind::File {
                    data: text.as_bytes(),
                    exec: false,
                },
            );
        }
    }
    if cfg.samples.is_dir() {
        add_tree(&mut a, &cfg.samples, "board/samples")?;
    }
    let mut extra: Vec<PathBuf> = fs::read_dir(made)
        .map_err(|e| format!("{}: {e}", made.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_none_or(|x| x != "kp"))
        .collect();
    extra.sort();
    for p in extra {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        a.add(
            &format!("board/{name}"),
            Kind::File {
                data: &read(&p)?,
                exec: false,
            },
        );
    }
    fs::write(out, a.finish()).map_err(|e| format!("{}: {e}", out.display()))
}

/// `dir` and everything under it, as `name` in the archive, in a stable order.
fn add_tree(a: &mut Archive, dir: &Path, name: &str) -> Result<(), String> {
    a.add(name, Kind::Dir);
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    entries.sort();
    for p in entries {
        let child = format!(
            "{name}/{}",
            p.file_name().unwrap_or_default().to_string_lossy()
        );
        if p.is_dir() {
            add_tree(a, &p, &child)?;
        } else {
            let data = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            a.add(
                &child,
                Kind::File {
                    data: &data,
                    exec: false,
                },
            );
        }
    }
    Ok(())
}

/// The applet names other than ktap itself, as `ktap --list` prints them.
fn applets(ktap: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(ktap)
        .arg("--list")
        .output()
        .map_err(|e| format!("{}: {e}", ktap.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "ktap")
        .map(String::from)
        .collect())
}

fn conf(cfg: &Config) -> Result<BTreeMap<String, String>, String> {
    let p = cfg.targets.join(format!("{}.conf", cfg.arch));
    let text = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn qemu_name(cfg: &Config) -> String {
    conf(cfg)
        .ok()
        .and_then(|c| c.get("qemu_system").cloned())
        .unwrap_or_else(|| "qemu-system".into())
}

/// The qemu command for the board, from targets/ARCH.conf.
fn qemu(cfg: &Config, initrd: &Path, mode: &str, nonce: &str) -> Result<Command, String> {
    let c = conf(cfg)?;
    let key = |k: &str| {
        c.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| format!("targets/{}.conf has no `{k}`", cfg.arch))
    };
    let mut cmd = Command::new(key("qemu_system")?);
    cmd.args(["-M", &key("qemu_machine")?]);
    if let Ok(cpu) = key("qemu_cpu") {
        cmd.args(["-cpu", &cpu]);
    }
    // No network and no display: no option ROMs to find, and nothing on the board but the tests.
    cmd.args([
        "-smp",
        "1",
        "-m",
        "512M",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-vga",
        "none",
    ]);
    cmd.arg("-kernel")
        .arg(&cfg.kernel)
        .arg("-initrd")
        .arg(initrd);
    let append = format!(
        "console={} panic=-1 quiet ktap.nonce={nonce} ktap.mode={mode}",
        key("qemu_console")?
    );
    cmd.args(["-append", &append]);
    Ok(cmd)
}

/// What one boot showed.
struct Board {
    /// The kernel release the board's hello gave.
    release: String,
    console: Vec<String>,
    outcomes: BTreeMap<(String, String), Outcome>,
    no_mode: Vec<(String, String)>,
    data: Vec<String>,
    done: bool,
    /// How the boot ended, as a sentence.
    end: String,
    /// The step that had begun and not ended when the board stopped reporting.
    unfinished: Option<(String, String)>,
}

impl Board {
    fn missing_reason(&self, step: &str, mode: &str) -> String {
        if self
            .unfinished
            .as_ref()
            .is_some_and(|(s, m)| s == step && m == mode)
        {
            format!("began but never ended ({})", self.end)
        } else {
            format!("never ran ({})", self.end)
        }
    }
}

fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}{:x}", t.as_nanos() as u64, std::process::id())
}

/// Boots, watching the console: the board must say hello within BOOT_S and then end each step
/// within its timeout and GRACE_S, or it is killed and called hung.
fn boot(
    cfg: &Config,
    initrd: &Path,
    mode: &str,
    log: &Path,
    timeouts: &BTreeMap<String, u64>,
) -> Result<Board, String> {
    let nonce = nonce();
    let mut cmd = qemu(cfg, initrd, mode, &nonce)?;
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e} (make board-deps installs it)", qemu_name(cfg)))?;
    let (tx, rx) = mpsc::channel::<Option<String>>();
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        if let Some(out) = stdout {
            let mut r = BufReader::new(out);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                // Only the line ending goes: trailing blanks are part of what the board printed.
                let line = String::from_utf8_lossy(&buf);
                let _ = tx.send(Some(line.trim_end_matches(['\r', '\n']).to_string()));
                buf.clear();
            }
        }
        let _ = tx.send(None);
    });
    let mut board = Board {
        release: String::new(),
        console: Vec::new(),
        outcomes: BTreeMap::new(),
        no_mode: Vec::new(),
        data: Vec::new(),
        done: false,
        end: String::new(),
        unfinished: None,
    };
    let started = Instant::now();
    let mut deadline = started + Duration::from_secs(BOOT_S);
    let mut current: Option<((String, String), Outcome)> = None;
    let mut hello = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(_) => {
                let _ = child.kill();
                board.end = match (&current, hello) {
                    (_, false) => format!("the board did not come up within {BOOT_S} s"),
                    (Some(((s, m), _)), _) => {
                        format!("the board stopped reporting during {s} (jit {m}) and was killed")
                    }
                    (None, true) => {
                        "the board stopped reporting between steps and was killed".into()
                    }
                };
                break;
            }
        };
        if let Some(l) = proto::parse(&nonce, &line) {
            let now = Instant::now();
            match l {
                Line::Hello { release, .. } => {
                    hello = true;
                    board.release = release;
                    deadline = now + Duration::from_secs(BOOT_S);
                }
                Line::NoMode { mode, why } => board.no_mode.push((mode, why)),
                Line::Begin { step, mode } => {
                    let t = timeouts.get(&step).copied().unwrap_or(BOOT_S);
                    deadline = now + Duration::from_secs(t + GRACE_S);
                    current = Some(((step, mode), Outcome::default()));
                }
                Line::Out { text } | Line::Err { text } if current.is_none() => {
                    board.console.push(format!("(board) {}", unescaped(&text)));
                }
                Line::Out { text } => current
                    .as_mut()
                    .map_or((), |c| c.1.stdout.push(unescaped(&text))),
                Line::Err { text } => current
                    .as_mut()
                    .map_or((), |c| c.1.stderr.push(unescaped(&text))),
                Line::End {
                    rc,
                    ms,
                    timed_out,
                    leftover,
                } => {
                    if let Some((key, mut o)) = current.take() {
                        o.rc = rc;
                        o.ms = ms;
                        o.timed_out = timed_out;
                        o.leftover = leftover;
                        board.outcomes.insert(key, o);
                    }
                    deadline = now + Duration::from_secs(BOOT_S);
                }
                Line::Usage(u) => {
                    if let Some(c) = current.as_mut() {
                        c.1.usage = Some(u);
                    }
                }
                Line::Data { text } => board.data.push(text),
                Line::Done => board.done = true,
            }
        }
        board.console.push(line);
    }
    let _ = reader.join();
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut qemu_err);
    }
    for l in qemu_err.lines() {
        board.console.push(format!("(qemu) {l}"));
    }
    board.unfinished = current.map(|(k, _)| k);
    if board.end.is_empty() {
        board.end = if board.done {
            format!("powered off after {:.1} s", started.elapsed().as_secs_f64())
        } else if !hello {
            format!("qemu ended ({status}) before the board came up")
        } else {
            format!("the board went down ({status}) without finishing: a kernel panic or a crashed init")
        };
    }
    fs::write(log, board.console.join("\n") + "\n")
        .map_err(|e| format!("{}: {e}", log.display()))?;
    Ok(board)
}

fn unescaped(text: &str) -> String {
    proto::unescape_bytes(text)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "board" that is a script standing in for qemu: it prints what a panicking or hung
    /// board prints, and the run must fail with the console shown, never pass or hang.
    fn fake_board(name: &str, body: &str) -> (Config, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ktap-board-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("targets")).unwrap();
        fs::create_dir_all(dir.join("cases")).unwrap();
        let qemu = dir.join("qemu.sh");
        fs::write(&qemu, format!("#!/bin/sh\n{body}\n")).unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(&qemu)
            .status()
            .unwrap();
        fs::write(
            dir.join("targets/mips.conf"),
            format!(
                "qemu_system = {}\nqemu_machine = malta\nqemu_console = ttyS0\n",
                qemu.display()
            ),
        )
        .unwrap();
        fs::write(dir.join("cases/one.case"), "# c\n-- run\nktap -V\n").unwrap();
        let file = dir.join("file");
        fs::write(&file, b"x").unwrap();
        let cfg = Config {
            arch: "mips".into(),
            kernel: file.clone(),
            ktap: file.clone(),
            board: file.clone(),
            workload: file,
            host_ktap: "/bin/true".into(),
            cases: dir.join("cases"),
            samples: dir.join("samples"),
            targets: dir.join("targets"),
            work: dir.join("work"),
            only: None,
            rounds: 1,
            events: 10,
        };
        (cfg, dir)
    }

    #[test]
    fn a_panicking_board_fails_with_its_console() {
        let (cfg, dir) = fake_board("panic", "echo 'Kernel panic - not syncing: VFS'; exit 1");
        assert!(!run(&cfg).unwrap());
        let log = fs::read_to_string(dir.join("work/mips/console.log")).unwrap();
        assert!(log.contains("Kernel panic"), "{log}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_board_that_ends_a_step_without_its_marker_is_a_failure() {
        // The right nonce cannot be known to the script, so nothing it prints counts.
        let (cfg, dir) = fake_board("forged", "echo '@ktap 1 done'; exit 0");
        assert!(!run(&cfg).unwrap());
        let _ = fs::remove_dir_all(dir);
    }
}
