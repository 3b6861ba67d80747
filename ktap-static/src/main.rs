//! The multi-call binary: picks an applet by the name it was invoked as (busybox-style) or by
//! its first argument, and runs it.

mod cli;
mod host;
mod kernel;
mod ktapc;
mod list;
mod opts;
mod record;
mod run;
mod selftest;
mod signals;
mod symbols;
mod verify;
mod vm;
mod vmexec;
mod vmlive;

/// The BPF loader; on 32-bit PowerPC, which aya has no bindings for, its stand-in.
#[cfg(not(target_arch = "powerpc"))]
use ktap_loader as loader;
#[cfg(target_arch = "powerpc")]
#[path = "nobpf.rs"]
mod loader;

use std::path::Path;
use std::process::ExitCode;

/// One applet: its name and its entry point, which takes the arguments after the name.
struct Applet {
    name: &'static str,
    help: &'static str,
    main: fn(Vec<String>) -> i32,
}

/// Every applet, sorted by name (a test keeps it so).
static APPLETS: &[Applet] = &[
    Applet {
        name: "ktap",
        help: "run a script or compiled object: ktap [options] FILE [args] [-- cmd [args]]",
        main: cli::ktap_main,
    },
    Applet {
        name: "ktap-selftest",
        help: "what this kernel supports; --dump FILE writes its description for ktapc --kernel",
        main: selftest::main,
    },
    Applet {
        name: "ktap-verify",
        help:
            "check FILE (script, object or .s) with ktap's verifier: ktap-verify [--compare] FILE",
        main: verify::main,
    },
    Applet {
        name: "ktap-vm",
        help: "run FILE.s in the VM (prints r0); --replay FILE SCRIPT replays a recording",
        main: vm::main,
    },
    Applet {
        name: "ktapc",
        help: "compile for a board: ktapc [--target ARCH] [--kernel FILE] [-o FILE] SCRIPT [args]",
        main: ktapc::main,
    },
];

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
                    println!("{:<14} {}", a.name, a.help);
                }
                return ExitCode::SUCCESS;
            }
            Some("--install") => return exit_code(install(args.get(2).map(Path::new))),
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
    exit_code((applet.main)(args))
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

/// `ktap --install DIR`: a symlink in DIR named after every applet, to this binary. Links
/// already there are replaced; anything else of the same name is left alone and reported.
fn install(dir: Option<&Path>) -> i32 {
    let Some(dir) = dir else {
        eprintln!("ktap: --install needs a directory, e.g. ktap --install /usr/bin");
        return 2;
    };
    let exe = match std::env::current_exe().and_then(std::fs::canonicalize) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ktap: cannot find this binary's path: {e}");
            return 1;
        }
    };
    let dir = match std::fs::canonicalize(dir) {
        Ok(d) if d.is_dir() => d,
        _ => {
            eprintln!("ktap: {} is not a directory", dir.display());
            return 1;
        }
    };
    // Beside the binary a relative link keeps working when the directory moves (a firmware
    // image's root, say).
    let target = match exe.parent() {
        Some(p) if p == dir => exe.file_name().map_or(exe.clone(), Into::into),
        _ => exe.clone(),
    };
    let mut failed = false;
    for a in APPLETS {
        let link = dir.join(a.name);
        if link == exe {
            continue;
        }
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Err(e) = std::fs::remove_file(&link) {
                    eprintln!("ktap: cannot replace {}: {}", link.display(), e);
                    failed = true;
                    continue;
                }
            }
            Ok(_) => {
                eprintln!(
                    "ktap: {} exists and is not a symlink; left alone",
                    link.display()
                );
                failed = true;
                continue;
            }
            Err(_) => {}
        }
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => println!("{} -> {}", link.display(), target.display()),
            Err(e) => {
                eprintln!("ktap: cannot create {}: {}", link.display(), e);
                failed = true;
            }
        }
    }
    i32::from(failed)
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
        for name in ["ktapc", "ktap-selftest"] {
            assert_eq!(find(name).map(|a| a.name), Some(name));
        }
    }
}
