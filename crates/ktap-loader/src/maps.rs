//! Byte-level access to the kernel's maps for the userspace VM: `bpf(2)` element commands on a
//! map descriptor, with keys and values as the raw bytes the programs see.
//!
//! aya's map types are typed over Rust values; the VM has only byte strings whose layout the
//! compiler chose, so these calls go to the kernel directly.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_int = 4;

/// The `bpf_attr` layout of the element commands.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    /// `value` for lookup and update, `next_key` for get-next-key.
    value: u64,
    flags: u64,
}

fn ptr(p: *const u8) -> u64 {
    p as usize as u64
}

/// Runs one element command; `Err` carries the kernel's errno.
fn call(cmd: libc::c_int, mut attr: ElemAttr, fd: BorrowedFd<'_>) -> Result<(), i32> {
    attr.map_fd = fd.as_raw_fd() as u32;
    // SAFETY: `attr` is a valid bpf_attr prefix for the element commands, its size is passed,
    // and every pointer in it refers to a live buffer of the size the map was created with
    // (the callers check the lengths).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &mut attr as *mut ElemAttr,
            std::mem::size_of::<ElemAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    } else {
        Ok(())
    }
}

/// The value stored under `key` into `value`; `Ok(false)` when there is none.
pub(crate) fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> Result<bool, i32> {
    let attr = ElemAttr {
        key: ptr(key.as_ptr()),
        value: ptr(value.as_mut_ptr()),
        ..ElemAttr::default()
    };
    match call(BPF_MAP_LOOKUP_ELEM, attr, fd) {
        Ok(()) => Ok(true),
        Err(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
    let attr = ElemAttr {
        key: ptr(key.as_ptr()),
        value: ptr(value.as_ptr()),
        flags,
        ..ElemAttr::default()
    };
    call(BPF_MAP_UPDATE_ELEM, attr, fd)
}

pub(crate) fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> Result<(), i32> {
    let attr = ElemAttr {
        key: ptr(key.as_ptr()),
        ..ElemAttr::default()
    };
    call(BPF_MAP_DELETE_ELEM, attr, fd)
}

/// The key after `key` (the first key for `None`) into `next`; `Ok(false)` at the end.
pub(crate) fn next_key(
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    next: &mut [u8],
) -> Result<bool, i32> {
    let attr = ElemAttr {
        key: key.map_or(0, |k| ptr(k.as_ptr())),
        value: ptr(next.as_mut_ptr()),
        ..ElemAttr::default()
    };
    match call(BPF_MAP_GET_NEXT_KEY, attr, fd) {
        Ok(()) => Ok(true),
        Err(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}
