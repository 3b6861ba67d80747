//! The loader's stand-in on 32-bit PowerPC, which aya has no bindings for: the loader crate
//! there has only its aya-free parts (tracefs, the perf-event executor's rings), re-exported
//! here under the loader's names, and a [`Session`] with maps in memory. Userspace-only scripts
//! run as anywhere else (and probes in the VM with `--vm`); loading a probe into the kernel is
//! refused with one message.

pub use ktap_loader::{perf_exec, tracefs, LoadError, TracefsKernel};

use ktap_bpf::Program;
use ktap_vm::{Host, MemHost, ENOENT};
use std::cell::RefCell;
use std::fmt;
use std::os::fd::{AsRawFd as _, BorrowedFd, RawFd};
use std::time::Duration;

/// Why something needs the loader this build does not have.
#[derive(Debug)]
pub struct NoLoader(String);

impl NoLoader {
    /// Nothing is attached without a loader, so no probe is ever refused.
    pub fn refused_probe(&self) -> Option<&str> {
        None
    }
}

impl fmt::Display for NoLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What users read when a script needs kernel probes.
pub const NO_LOADER: &str = "this build has no BPF loader (32-bit PowerPC): use --vm";

#[derive(Clone, Debug, Default)]
pub struct LoadOptions;

/// A program with no probes, its maps in memory.
pub struct Session {
    maps: RefCell<MemHost>,
    value_sizes: Vec<usize>,
    key_sizes: Vec<usize>,
    /// A descriptor whose readiness ends a wait early (the workload's pidfd).
    wake: Option<RawFd>,
}

/// Sets up a program's maps; a program with probes needs the loader.
pub fn load(prog: &Program, _opts: &LoadOptions) -> Result<Session, NoLoader> {
    if let Some(p) = prog.probes.first() {
        return Err(NoLoader(format!("probe {}: {}", p.name, NO_LOADER)));
    }
    Ok(Session {
        maps: RefCell::new(MemHost::new(&prog.maps, prog.target.endian)),
        value_sizes: prog.maps.iter().map(|m| m.value_size as usize).collect(),
        key_sizes: prog.maps.iter().map(|m| m.key_size as usize).collect(),
        wake: None,
    })
}

impl Session {
    /// Makes [`Session::poll`] return as soon as `fd` is readable; the caller keeps `fd` open
    /// while it polls.
    pub fn wake_on(&mut self, fd: BorrowedFd<'_>) -> Result<(), NoLoader> {
        self.wake = Some(fd.as_raw_fd());
        Ok(())
    }

    /// No probes, so no output arrives: waits out the timeout, or until the descriptor
    /// [`Session::wake_on`] gave is readable.
    pub fn poll(
        &mut self,
        timeout: Duration,
        _on_record: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NoLoader> {
        match self.wake {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: `p` is one valid pollfd and the count says so.
                unsafe { libc::poll(&mut p, 1, ms) };
            }
            None => std::thread::sleep(timeout),
        }
        Ok(0)
    }
    pub fn lost(&self) -> u64 {
        0
    }
    pub fn startup(&self) -> Duration {
        Duration::ZERO
    }
    /// Nothing is attached, so nothing is skipped.
    pub fn skipped(&self) -> &[NoLoader] {
        &[]
    }
    /// No programs are loaded.
    pub fn program_ids(&self) -> &[u32] {
        &[]
    }
    /// A value's bytes as lookups return them: one value, since in-memory per-CPU maps have
    /// one CPU.
    pub fn value_len(&self, map: u32) -> Option<usize> {
        self.value_sizes.get(map as usize).copied()
    }
    pub fn stop_probes(&mut self) {}
    pub fn detach(self) {}

    pub fn lookup(&self, map: u32, key: &[u8]) -> Result<Option<Vec<u8>>, NoLoader> {
        let mut v = vec![0u8; self.value_sizes.get(map as usize).copied().unwrap_or(0)];
        Ok(self
            .maps
            .borrow_mut()
            .map_lookup(map, key, &mut v)
            .then_some(v))
    }
    pub fn update(&self, map: u32, key: &[u8], value: &[u8], flags: u64) -> Result<i64, NoLoader> {
        Ok(self.maps.borrow_mut().map_update(map, key, value, flags))
    }
    pub fn delete(&self, map: u32, key: &[u8]) -> Result<i64, NoLoader> {
        Ok(self.maps.borrow_mut().map_delete(map, key))
    }
    pub fn next_key(&self, map: u32, key: Option<&[u8]>) -> Option<Vec<u8>> {
        let mut next = vec![0u8; self.key_sizes.get(map as usize).copied().unwrap_or(0)];
        let rc = self.maps.borrow_mut().map_next_key(map, key, &mut next);
        (rc != -ENOENT && rc >= 0).then_some(next)
    }
    pub fn clear(&self, map: u32) -> Result<(), NoLoader> {
        self.maps.borrow_mut().map_clear(map);
        Ok(())
    }
    pub fn count(&self, map: u32) -> Result<u64, NoLoader> {
        Ok(self.maps.borrow_mut().map_count(map))
    }
}
