//! Running a program once in the kernel with `BPF_PROG_TEST_RUN`, to compare the kernel's
//! verifier and JIT (or interpreter) against ktap's VM on the same instructions and context.
//!
//! The program is loaded as a `BPF_PROG_TYPE_SYSCALL` program, the one type whose context is a
//! plain byte buffer the caller supplies (readable and writable at any offset), so a
//! conformance case's `-- mem` is passed as it is. Such programs must be sleepable. The kernel
//! reports only the low 32 bits of `r0`, so the high half comes from a second run of the same
//! code called as a subprogram by a three-instruction wrapper that shifts it down.

use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use ktap_bpf::insn::{encode_all, Endian, Insn, BPF_PSEUDO_CALL, BPF_RSH, R0};

use crate::error::LoadError;

pub(crate) const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// The program type every kernel with `bpf()` has.
pub(crate) const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const BPF_PROG_TYPE_SYSCALL: u32 = 31;
const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// Bytes of verifier log kept when the kernel refuses a program.
const LOG_SIZE: usize = 64 * 1024;

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD`, up to `prog_flags`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgLoadAttr {
    pub(crate) prog_type: u32,
    pub(crate) insn_cnt: u32,
    pub(crate) insns: u64,
    pub(crate) license: u64,
    pub(crate) log_level: u32,
    pub(crate) log_size: u32,
    pub(crate) log_buf: u64,
    pub(crate) kern_version: u32,
    pub(crate) prog_flags: u32,
}

/// The `test` member of `union bpf_attr` for `BPF_PROG_TEST_RUN`, up to `ctx_out`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}

/// `bpf(cmd, attr)`, the attribute padded to the size the kernel accepts for every command.
pub(crate) fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<i64, io::Error> {
    // The kernel zero-checks everything past the fields it knows, so a larger zeroed buffer is
    // always acceptable and keeps the call independent of the kernel's `bpf_attr` size.
    let mut buf = [0u8; 256];
    let size = std::mem::size_of::<T>();
    // SAFETY: `attr` is a plain repr(C) struct of `size` bytes (< 256), copied bytewise.
    unsafe { std::ptr::copy_nonoverlapping(attr as *const T as *const u8, buf.as_mut_ptr(), size) };
    // SAFETY: `buf` is a valid, writable attribute buffer of the length passed, and every
    // pointer inside it refers to memory that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, buf.as_mut_ptr(), buf.len() as u32) };
    // SAFETY: as above, copying the (possibly updated) fields back.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), attr as *mut T as *mut u8, size) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as i64)
    }
}

/// Loads `insns` as a sleepable syscall program.
fn load_syscall(insns: &[Insn]) -> Result<OwnedFd, LoadError> {
    load(BPF_PROG_TYPE_SYSCALL, BPF_F_SLEEPABLE, insns)
}

fn load(prog_type: u32, prog_flags: u32, insns: &[Insn]) -> Result<OwnedFd, LoadError> {
    let code = encode_all(insns, Endian::host());
    let mut log = vec![0u8; LOG_SIZE];
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: code.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_flags,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(source) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).into_owned();
            let rejected = |source| LoadError::Rejected {
                probe: "test program".into(),
                event: "a test run".into(),
                source,
                log: text.clone(),
            };
            if text.trim().is_empty() {
                Err(LoadError::from_io(source, "load BPF programs", rejected))
            } else {
                Err(rejected(source))
            }
        }
    }
}

/// Runs the loaded program once over `ctx`; the low 32 bits of its `r0`.
fn run_once(fd: &OwnedFd, ctx: &mut [u8]) -> Result<u32, LoadError> {
    use std::os::fd::AsRawFd as _;
    let mut attr = TestRunAttr {
        prog_fd: fd.as_raw_fd() as u32,
        ctx_size_in: ctx.len() as u32,
        ctx_in: if ctx.is_empty() {
            0
        } else {
            ctx.as_ptr() as u64
        },
        ..Default::default()
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr)
        .map_err(|e| LoadError::system(e, "run a program with BPF_PROG_TEST_RUN"))?;
    Ok(attr.retval)
}

/// Runs `insns` once in the kernel with `ctx` as its context and returns the whole 64-bit `r0`.
/// The kernel's verifier must accept the program (as a syscall program); its refusal comes back
/// as [`LoadError::Rejected`] with the verifier's log.
pub fn test_run(insns: &[Insn], ctx: &[u8]) -> Result<u64, LoadError> {
    let low = {
        let fd = load_syscall(insns)?;
        run_once(&fd, &mut ctx.to_vec())?
    };
    // call the program as a subprogram, then r0 >>= 32; exit
    let mut wrapped = vec![
        Insn::new(
            ktap_bpf::insn::BPF_JMP | ktap_bpf::insn::BPF_CALL,
            0,
            BPF_PSEUDO_CALL,
            0,
            2,
        ),
        Insn::alu64_imm(BPF_RSH, R0, 32),
        Insn::exit(),
    ];
    wrapped.extend_from_slice(insns);
    let high = {
        let fd = load_syscall(&wrapped)?;
        run_once(&fd, &mut ctx.to_vec())?
    };
    Ok(u64::from(high) << 32 | u64::from(low))
}
