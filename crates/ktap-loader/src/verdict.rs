//! What the running kernel's verifier says about a program, without attaching it: ktap's
//! verifier is tested against this (`ktap-verify --kernel` and the differential tests).
//! Maps are created once and shared by every program checked against them.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use ktap_bpf::insn::{encode_all, Endian, Insn, BPF_PSEUDO_MAP_FD};
use ktap_bpf::{MapDef, MapKind};

use crate::error::LoadError;
use crate::test_run::{bpf, ProgLoadAttr, BPF_PROG_LOAD};

const BPF_MAP_CREATE: libc::c_long = 0;
/// Room for the verifier's log of a rejected program; since Linux 6.4 a log that does not
/// fit keeps its end, where the reason is.
const LOG_SIZE: usize = 1 << 16;

/// The leading fields of `union bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// The kernel's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Refused, with the error number and the verifier's log (its last line is the reason).
    Rejected {
        errno: i32,
        log: String,
    },
}

impl Verdict {
    /// The last line of the log that says something, the kernel's reason.
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Accepted => "",
            Verdict::Rejected { log, .. } => log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| {
                    !l.is_empty()
                        && !l.starts_with("processed ")
                        && !l.starts_with("verification time")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or(""),
        }
    }
}

/// The maps of the programs to check, created in the kernel.
pub struct VerdictMaps {
    fds: Vec<OwnedFd>,
}

impl VerdictMaps {
    pub fn create(maps: &[MapDef]) -> Result<VerdictMaps, LoadError> {
        let mut fds = Vec::with_capacity(maps.len());
        for m in maps {
            let perf = m.kind == MapKind::PerfEventArray;
            let mut attr = MapCreateAttr {
                map_type: m.kind as u32,
                key_size: if perf { 4 } else { m.key_size },
                value_size: if perf { 4 } else { m.value_size },
                max_entries: m.max_entries.max(1),
                map_flags: 0,
            };
            let fd = bpf(BPF_MAP_CREATE, &mut attr).map_err(|source| {
                LoadError::from_io(source, "create maps", |source| LoadError::CreateMap {
                    map: m.name.clone(),
                    source,
                })
            })?;
            // SAFETY: a successful BPF_MAP_CREATE returns a new descriptor nothing else owns.
            fds.push(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        Ok(VerdictMaps { fds })
    }
}

/// Loads `insns` as a program of kernel type `prog_type` (a `bpf_prog_type`) referencing
/// `maps` by index, and unloads it: the verifier's verdict. `Err` means the question could not
/// be asked (no `bpf()`, no permission).
pub fn kernel_verdict(
    prog_type: u32,
    insns: &[Insn],
    maps: &VerdictMaps,
) -> Result<Verdict, LoadError> {
    let mut code = insns.to_vec();
    for i in code.iter_mut() {
        if i.is_ld_imm64() && i.src == BPF_PSEUDO_MAP_FD {
            if let Some(fd) = maps.fds.get(i.imm as u32 as usize) {
                i.imm = fd.as_raw_fd();
            }
        }
    }
    let bytes = encode_all(&code, Endian::host());
    // Without a log first: a log that overflows its buffer fails the load on older kernels
    // even when the program is sound.
    let attempt = |log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: code.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: c"GPL".as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            ..Default::default()
        };
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    let errno = match attempt(&mut []) {
        Ok(fd) => {
            // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor nothing else owns;
            // dropping it unloads the program.
            drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            return Ok(Verdict::Accepted);
        }
        Err(e) => e,
    };
    let code_of = |e: &io::Error| e.raw_os_error().unwrap_or(0);
    if matches!(code_of(&errno), libc::EPERM | libc::ENOSYS) {
        return Err(LoadError::from_io(
            errno,
            "ask the kernel's verifier",
            |source| LoadError::Rejected {
                probe: "program".into(),
                event: "a verifier check".into(),
                source,
                log: String::new(),
            },
        ));
    }
    let mut log = vec![0u8; LOG_SIZE];
    if let Ok(fd) = attempt(&mut log) {
        // Accepted with a log though not without: cannot happen, but the answer is the load's.
        // SAFETY: as above.
        drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        return Ok(Verdict::Accepted);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Ok(Verdict::Rejected {
        errno: code_of(&errno),
        log: String::from_utf8_lossy(&log[..end]).into_owned(),
    })
}
