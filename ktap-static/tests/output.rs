//! The `ktap` binary's `-f json` output and its `-le`, `-lf`, `-lm` listings, run as a user
//! runs them on this machine (scripts of top-level code only, so no probe is attached).

use std::process::{Command, Output, Stdio};

fn ktap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ktap"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ktap")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
const LIBSTDCXX: &str = "/lib/x86_64-linux-gnu/libstdc++.so.6";

#[test]
fn json_print_is_one_line() {
    let o = ktap(&["-f", "json", "-e", r#"print(1, "a", nil, true)"#]);
    assert_eq!(
        stdout(&o),
        "{\"type\":\"print\",\"values\":[1,\"a\",null,true]}\n"
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn json_printf_table_and_exit() {
    let script = r#"
        printf("%s=%d\n", "x", 42)
        var t = {}
        t["read"] = 3
        t["write\t"] = 5
        print_hist(t)
        exit(3)
    "#;
    let o = ktap(&["-fjson", "-e", script]);
    assert_eq!(
        stdout(&o),
        concat!(
            "{\"type\":\"printf\",\"text\":\"x=42\\n\"}\n",
            "{\"type\":\"hist\",\"table\":\"t\",\"rows\":[{\"key\":\"write\\t\",\"count\":5},",
            "{\"key\":\"read\",\"count\":3}],\"omitted\":0}\n",
            "{\"type\":\"exit\",\"code\":3}\n",
        )
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn text_stays_the_default_and_can_be_asked_for() {
    for args in [&[][..], &["-f", "text"][..]] {
        let mut a = args.to_vec();
        a.extend(["-e", r#"print(1, "a", nil, true)"#]);
        let o = ktap(&a);
        assert_eq!(stdout(&o), "1\ta\tnil\ttrue\n", "{}", stderr(&o));
    }
}

#[test]
fn an_unknown_output_format_is_refused() {
    let o = ktap(&["-f", "xml", "-e", "print(1)"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("xml"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn list_events_by_glob() {
    let o = ktap(&["-le", "sched:sched_sw*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert!(
        lines.contains(&"sched:sched_switch".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with("sched:sched_sw")),
        "{lines:?}"
    );
    let o = ktap(&["-le"]);
    let all: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert!(all.len() > 100, "{}", all.len());
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "not sorted, or repeated"
    );
    assert!(all.contains(&"syscalls:sys_enter_openat".to_string()));
    let o = ktap(&["-le", "nosuch:*"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
}

#[test]
fn list_functions_of_libc() {
    let o = ktap(&["-lf", LIBC]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = stdout(&o).lines().map(String::from).collect();
    for f in ["malloc", "free", "memcpy", "open"] {
        assert!(names.contains(&f.to_string()), "{f} missing");
    }
    // memcpy has two versions in glibc's x86-64 libc; each name is listed once, unversioned.
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "not sorted, or repeated"
    );
    assert!(names.iter().all(|n| !n.contains('@')));
}

#[test]
fn list_markers() {
    // This libc is built without SystemTap markers (`readelf -n` shows no stapsdt notes);
    // libstdc++ has its exception markers.
    let o = ktap(&["-lm", LIBSTDCXX]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(
        names,
        ["libstdcxx:catch", "libstdcxx:rethrow", "libstdcxx:throw"]
    );
    let o = ktap(&["-lm", LIBC]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("no SDT markers"), "{}", stderr(&o));
}

#[test]
fn listing_errors_are_clear() {
    let o = ktap(&["-lf", "/nonexistent/libfoo.so"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read /nonexistent/libfoo.so"),
        "{}",
        stderr(&o)
    );
    let o = ktap(&["-lm", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "ktap: /etc/hostname: not an ELF file\n");
    let o = ktap(&["-lf"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = ktap(&["-lx"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("-le"), "{}", stderr(&o));
}

/// The workload binary, built next to this test's own target dir (`make test` builds it).
fn workload() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let w = exe.parent()?.parent()?.join("ktap-workload");
    w.exists().then(|| w.to_string_lossy().into_owned())
}

#[test]
fn json_from_a_probe_keeps_stdout_pure() {
    let Some(w) = workload() else {
        eprintln!("ktap-workload is not built (cargo build -p ktap-workload): not run");
        return;
    };
    let script = "trace syscalls:sys_enter_getppid { print(execname, pid > 0); exit(0) }";
    let o = ktap(&["-f", "json", "-e", script, "--", &w, "getppid", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        concat!(
            "{\"type\":\"print\",\"values\":[\"ktap-workload\",true]}\n",
            "{\"type\":\"exit\",\"code\":0}\n"
        )
    );
    assert!(
        stderr(&o).starts_with("Tracing... Hit Ctrl-C to end.\n"),
        "{}",
        stderr(&o)
    );
}
