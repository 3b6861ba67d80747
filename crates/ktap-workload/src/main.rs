//! ktap-workload: the deterministic program the tests and samples trace, so that expected event counts are known exactly.

// Rust's own start-up polls fds 0-2, installs signal handlers and reads /proc/self/maps with a
// varying number of read(2)s. Entering at the C `main` skips all of it, so the only syscalls
// before the workload's own are the dynamic loader's (none at all in a static build).
#![no_main]

use std::ffi::{c_char, c_int, CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use ktap_workload::{args, work};

#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // std::env::args is empty without Rust's start-up on musl, so argv is read here directly.
    let args = (1..usize::try_from(argc).unwrap_or(0)).map(|i| {
        // SAFETY: the C runtime passes argc valid NUL-terminated strings in argv.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
        OsString::from(OsStr::from_bytes(arg.to_bytes()))
    });
    let cmd = match args::parse(args) {
        Ok(cmd) => cmd,
        Err(msg) => {
            eprintln!("ktap-workload: {msg}\n{}", args::USAGE);
            return 2;
        }
    };
    match work::run(&cmd) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("ktap-workload: {msg}");
            1
        }
    }
}
