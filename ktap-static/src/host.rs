//! The userspace VM's view of the world while a script runs: the live kernel maps of the
//! loaded session, and output records handed straight to the printer.

use crate::loader::Session;
use crate::symbols::Symbols;
use ktap_bpf::Program;
use ktap_fmt::{MapSource, Outcome, Printer};
use ktap_vm::{Host, ENOENT};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Reads whole tables for `print_hist`.
pub struct SessionMaps<'a>(pub &'a Session);

impl MapSource for SessionMaps<'_> {
    fn entries(&mut self, map: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        while let Some(next) = self.0.next_key(map, key.as_deref()) {
            if let Ok(Some(v)) = self.0.lookup(map, &next) {
                out.push((next.clone(), v));
            }
            key = Some(next);
        }
        out
    }
}

/// The tables output records may read (`print_hist`) and empty (`delete(t)` from a probe):
/// the live kernel maps, or the VM's in-memory tables.
pub trait Tables: MapSource {
    fn clear(&mut self, map: u32) -> Result<(), String>;
}

impl Tables for SessionMaps<'_> {
    fn clear(&mut self, map: u32) -> Result<(), String> {
        self.0.clear(map).map_err(|e| e.to_string())
    }
}

/// Where output records go and what they asked for.
pub struct Output<'a> {
    pub prog: &'a Program,
    pub printer: Printer<Symbols>,
    pub out: Box<dyn Write + 'a>,
    /// `exit(code)` was called.
    pub exit: Option<i64>,
    /// The first error met while printing (a broken pipe, a bad record).
    pub error: Option<String>,
}

impl<'a> Output<'a> {
    pub fn new(prog: &'a Program, out: Box<dyn Write + 'a>) -> Output<'a> {
        Output {
            prog,
            printer: Printer::new(Symbols::for_program(prog)),
            out,
            exit: None,
            error: None,
        }
    }

    /// Prints one record; `exit()` and `delete()` records take effect here.
    pub fn record(&mut self, session: &Session, rec: &[u8]) {
        self.record_with(&mut SessionMaps(session), rec);
    }

    /// [`Output::record`] over any tables.
    pub fn record_with(&mut self, tables: &mut dyn Tables, rec: &[u8]) {
        match self.printer.handle(rec, self.prog, tables, &mut self.out) {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::Exit(code)) => {
                self.exit.get_or_insert(code);
            }
            Ok(Outcome::Clear(map)) => {
                if let Err(e) = tables.clear(map) {
                    self.error.get_or_insert(e);
                }
            }
            Err(e) => {
                self.error.get_or_insert(e.to_string());
            }
        }
    }
}

/// The VM host for top-level code, `tick` and `trace_end`.
pub struct VmHost<'s, 'o, 'a> {
    pub session: &'s Session,
    pub output: &'o mut Output<'a>,
}

impl Host for VmHost<'_, '_, '_> {
    fn map_lookup(&mut self, map: u32, key: &[u8], value: &mut [u8]) -> bool {
        // A per-CPU map gives one value per CPU; userspace code sees the first CPU's, as a
        // program running on CPU 0 would.
        match self.session.lookup(map, key) {
            Ok(Some(v)) if v.len() >= value.len() => {
                value.copy_from_slice(&v[..value.len()]);
                true
            }
            _ => false,
        }
    }
    fn map_update(&mut self, map: u32, key: &[u8], value: &[u8], flags: u64) -> i64 {
        let full = self.session.value_len(map).unwrap_or(value.len());
        if full == value.len() {
            return self.session.update(map, key, value, flags).unwrap_or(-22);
        }
        // Per-CPU: replace the first CPU's value and keep the others.
        let mut all = match self.session.lookup(map, key) {
            Ok(Some(v)) if v.len() == full => v,
            _ => vec![0; full],
        };
        all[..value.len()].copy_from_slice(value);
        self.session.update(map, key, &all, flags).unwrap_or(-22)
    }
    fn map_delete(&mut self, map: u32, key: &[u8]) -> i64 {
        self.session.delete(map, key).unwrap_or(-22)
    }
    fn map_next_key(&mut self, map: u32, key: Option<&[u8]>, next: &mut [u8]) -> i64 {
        match self.session.next_key(map, key) {
            Some(k) if k.len() == next.len() => {
                next.copy_from_slice(&k);
                0
            }
            _ => -ENOENT,
        }
    }
    fn map_clear(&mut self, map: u32) -> i64 {
        match self.session.clear(map) {
            Ok(()) => 0,
            Err(_) => -22,
        }
    }
    fn map_count(&mut self, map: u32) -> u64 {
        self.session.count(map).unwrap_or(0)
    }
    fn output(&mut self, _map: u32, _flags: u64, record: &[u8]) -> i64 {
        self.output.record(self.session, record);
        0
    }
    fn ktime_ns(&mut self) -> u64 {
        // The probes' clock, so top-level code can relate the two (the wall clock's offset
        // that `gettimeofday_*()` in probes adds).
        crate::kernel::monotonic_ns()
    }
    fn wall_clock_ns(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
    fn cpu(&mut self) -> u32 {
        0
    }
    fn pid_tgid(&mut self) -> u64 {
        let pid = std::process::id() as u64;
        (pid << 32) | pid
    }
    fn uid_gid(&mut self) -> u64 {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        ((gid as u64) << 32) | uid as u64
    }
    fn comm(&mut self) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(b"ktap");
        c
    }
    fn num_cpus(&mut self) -> u32 {
        crate::kernel::online_cpus()
    }
    fn kernel_release(&mut self) -> Vec<u8> {
        crate::kernel::release().into_bytes()
    }
}
