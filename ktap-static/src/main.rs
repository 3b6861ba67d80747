//! The multi-call binary: picks an applet by the name it was invoked as (busybox-style) or by
//! its first argument, and runs it.

mod cli;
mod host;
mod run;
mod signals;

use std::process::ExitCode;

/// One applet: its name and its entry point, which takes the arguments after the name.
struct Applet {
    name: &'static str,
    help: &'static str,
    main: fn(Vec<String>) -> i32,
}

/// Every applet, sorted by name (a test keeps it so).
static APPLETS: &[Applet] = &[Applet {
    name: "ktap",
    help: "run a script: ktap [options] FILE [args] [-- cmd [args]]",
    main: cli::ktap_main,
}];

fn find(name: &str) -> Option<&'static Applet> {
    APPLETS
        .binary_search_by(|a| a.name.cmp(name))
        .ok()
        .map(|i| &APPLETS[i])
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let invoked = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `ktap --list`, or `ktap APPLET ...` when APPLET is another applet's name.
    let applet = match find(&invoked) {
        Some(a) if a.name == "ktap" => match args.get(1).map(String::as_str) {
            Some("--list") => {
                for a in APPLETS {
                    println!("{:<12} {}", a.name, a.help);
                }
                return ExitCode::SUCCESS;
            }
            Some(first) => match find(first) {
                Some(other) if other.name != "ktap" => {
                    args.remove(0);
                    other
                }
                _ => a,
            },
            None => a,
        },
        Some(a) => a,
        None => match args.get(1).and_then(|first| find(first)) {
            Some(a) => {
                args.remove(0);
                a
            }
            None => find("ktap").unwrap_or(&APPLETS[0]),
        },
    };
    let code = (applet.main)(args);
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applets_are_sorted_and_unique() {
        for w in APPLETS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        assert!(find("ktap").is_some());
        assert!(find("nope").is_none());
    }
}
