//! Command-line parsing for ktap-workload: turns the arguments into a `Command`, or into the message that goes with exit status 2.

use std::ffi::OsString;
use std::path::PathBuf;

/// Printed after every argument error and by `--help`.
pub const USAGE: &str = "\
usage: ktap-workload COMMAND ARGS...
  getppid N      call getppid(2) N times
  read SIZE N    read SIZE bytes from /dev/zero N times
  open PATH N    openat(2) then close(2) PATH N times
  write N        write 1 byte to /dev/null N times
  sleep MS       sleep for MS milliseconds
  spin MS        busy-loop for MS milliseconds
  fork N         fork N children, one at a time, each exiting at once
  syscalls N     N rounds of getppid, getpid, read of /dev/zero, write to /dev/null
  call N         call ktap_workload_add(i, 2*i) for i = 1..N, a function for uprobes
  connect N      connect a TCP socket to a listener on 127.0.0.1 N times (loopback must be up)";

/// The largest `read SIZE`: the buffer is allocated up front, and an absurd size should be
/// refused with a message rather than end in an allocation failure.
pub const MAX_READ_SIZE: usize = 16 << 20;

/// What the program was asked to do; counts are how many times the loop body runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Getppid { count: u64 },
    Read { size: usize, count: u64 },
    Open { path: PathBuf, count: u64 },
    Write { count: u64 },
    Sleep { ms: u64 },
    Spin { ms: u64 },
    Fork { count: u64 },
    Syscalls { count: u64 },
    Call { count: u64 },
    Connect { count: u64 },
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(name) = args.next() else {
        return Err("missing COMMAND".into());
    };
    let name = name
        .into_string()
        .map_err(|bad| format!("unknown command {bad:?}"))?;
    let rest: Vec<OsString> = args.collect();
    let (operands, build): (&[&str], Build) = match name.as_str() {
        "-h" | "--help" | "help" => (&[], |_| Ok(Command::Help)),
        "getppid" => (&["N"], |a| {
            Ok(Command::Getppid {
                count: number("N", &a[0])?,
            })
        }),
        "read" => (&["SIZE", "N"], |a| {
            Ok(Command::Read {
                size: read_size(&a[0])?,
                count: number("N", &a[1])?,
            })
        }),
        "open" => (&["PATH", "N"], |a| {
            Ok(Command::Open {
                path: PathBuf::from(&a[0]),
                count: number("N", &a[1])?,
            })
        }),
        "write" => (&["N"], |a| {
            Ok(Command::Write {
                count: number("N", &a[0])?,
            })
        }),
        "sleep" => (&["MS"], |a| {
            Ok(Command::Sleep {
                ms: number("MS", &a[0])?,
            })
        }),
        "spin" => (&["MS"], |a| {
            Ok(Command::Spin {
                ms: number("MS", &a[0])?,
            })
        }),
        "fork" => (&["N"], |a| {
            Ok(Command::Fork {
                count: number("N", &a[0])?,
            })
        }),
        "syscalls" => (&["N"], |a| {
            Ok(Command::Syscalls {
                count: number("N", &a[0])?,
            })
        }),
        "call" => (&["N"], |a| {
            Ok(Command::Call {
                count: number("N", &a[0])?,
            })
        }),
        "connect" => (&["N"], |a| {
            Ok(Command::Connect {
                count: number("N", &a[0])?,
            })
        }),
        _ => return Err(format!("unknown command `{name}`")),
    };
    if rest.len() != operands.len() {
        let expected = if operands.is_empty() {
            "no arguments".to_string()
        } else {
            operands.join(" ")
        };
        return Err(format!(
            "`{name}` takes {expected}, but was given {} argument{}",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ));
    }
    build(&rest)
}

/// Builds a command from operands already counted against the command's list.
type Build = fn(&[OsString]) -> Result<Command, String>;

/// A non-negative decimal integer, named in the message by its operand.
fn number(operand: &str, arg: &OsString) -> Result<u64, String> {
    arg.to_str()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{operand} must be a non-negative integer, got {arg:?}"))
}

fn read_size(arg: &OsString) -> Result<usize, String> {
    let size = number("SIZE", arg)?;
    usize::try_from(size)
        .ok()
        .filter(|&s| s <= MAX_READ_SIZE)
        .ok_or_else(|| format!("SIZE must be at most {MAX_READ_SIZE}, got {size}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(
            parse_str(&["getppid", "1000"]),
            Ok(Command::Getppid { count: 1000 })
        );
        assert_eq!(
            parse_str(&["read", "4096", "3"]),
            Ok(Command::Read {
                size: 4096,
                count: 3
            })
        );
        assert_eq!(
            parse_str(&["open", "/etc/hostname", "2"]),
            Ok(Command::Open {
                path: "/etc/hostname".into(),
                count: 2
            })
        );
        assert_eq!(parse_str(&["write", "0"]), Ok(Command::Write { count: 0 }));
        assert_eq!(parse_str(&["sleep", "10"]), Ok(Command::Sleep { ms: 10 }));
        assert_eq!(parse_str(&["spin", "5"]), Ok(Command::Spin { ms: 5 }));
        assert_eq!(parse_str(&["fork", "4"]), Ok(Command::Fork { count: 4 }));
        assert_eq!(
            parse_str(&["syscalls", "7"]),
            Ok(Command::Syscalls { count: 7 })
        );
        assert_eq!(parse_str(&["call", "3"]), Ok(Command::Call { count: 3 }));
        assert_eq!(
            parse_str(&["connect", "2"]),
            Ok(Command::Connect { count: 2 })
        );
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn missing_and_unknown_commands_are_refused() {
        assert_eq!(parse_str(&[]), Err("missing COMMAND".into()));
        assert_eq!(
            parse_str(&["getpid", "1"]),
            Err("unknown command `getpid`".into())
        );
    }

    #[test]
    fn wrong_argument_counts_name_the_operands() {
        assert_eq!(
            parse_str(&["read", "10"]),
            Err("`read` takes SIZE N, but was given 1 argument".into())
        );
        assert_eq!(
            parse_str(&["getppid"]),
            Err("`getppid` takes N, but was given 0 arguments".into())
        );
        assert_eq!(
            parse_str(&["fork", "1", "2"]),
            Err("`fork` takes N, but was given 2 arguments".into())
        );
        assert_eq!(
            parse_str(&["--help", "x"]),
            Err("`--help` takes no arguments, but was given 1 argument".into())
        );
    }

    #[test]
    fn numbers_must_be_plain_non_negative_decimals() {
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "0x10",
            "ten",
            " 1",
            "18446744073709551616",
        ] {
            assert_eq!(
                parse_str(&["getppid", bad]),
                Err(format!("N must be a non-negative integer, got {bad:?}")),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_str(&["getppid", "18446744073709551615"]),
            Ok(Command::Getppid { count: u64::MAX })
        );
        assert_eq!(
            parse_str(&["sleep", "soon"]),
            Err("MS must be a non-negative integer, got \"soon\"".into())
        );
    }

    #[test]
    fn read_size_is_bounded() {
        let max = MAX_READ_SIZE.to_string();
        assert_eq!(
            parse_str(&["read", &max, "1"]),
            Ok(Command::Read {
                size: MAX_READ_SIZE,
                count: 1
            })
        );
        let over = (MAX_READ_SIZE + 1).to_string();
        assert_eq!(
            parse_str(&["read", &over, "1"]),
            Err(format!("SIZE must be at most {MAX_READ_SIZE}, got {over}"))
        );
    }
}
