//! Tests of the VM through its public API: one module per instruction family or concern, sharing
//! the small program-building helpers below.

mod calls;
mod faults;
mod fuzz;
mod helpers;
mod isa;
mod maps;
mod memhost;

use ktap_bpf::insn::*;
use ktap_bpf::{Endian, Function, MapDef, MapKind, MapRole, Span, ValueType};
use ktap_vm::{run, Fault, Host, MemHost, RunEnv};

/// A function of `insns`, with empty spans.
pub fn func(insns: &[Insn]) -> Function {
    Function {
        insns: insns.to_vec(),
        spans: vec![Span::default(); insns.len()],
    }
}

/// Runs `insns` on a little-endian target without maps or context.
pub fn exec(insns: &[Insn]) -> Result<u64, Fault> {
    exec_in(Endian::Little, insns)
}

/// Runs `insns` on a target of byte order `endian` without maps or context.
pub fn exec_in(endian: Endian, insns: &[Insn]) -> Result<u64, Fault> {
    let mut host = MemHost::new(&[], endian);
    run(&func(insns), &mut [], &RunEnv::new(&[], endian), &mut host)
}

/// Runs `insns` little-endian against `maps` held by `host`, with context `ctx`.
pub fn exec_maps(
    insns: &[Insn],
    maps: &[MapDef],
    host: &mut dyn Host,
    ctx: &mut [u8],
) -> Result<u64, Fault> {
    run(&func(insns), ctx, &RunEnv::new(maps, Endian::Little), host)
}

/// The message of the fault `result` must be.
pub fn fault<T: std::fmt::Debug>(result: Result<T, Fault>) -> Fault {
    match result {
        Err(f) => f,
        Ok(v) => panic!("expected a fault, the program returned {v:x?}"),
    }
}

/// A map definition of `kind` with the given sizes.
pub fn map(kind: MapKind, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
    MapDef {
        name: "t".into(),
        kind,
        role: if kind == MapKind::PerfEventArray {
            MapRole::Output
        } else {
            MapRole::Table
        },
        key: ValueType::Int,
        value: ValueType::Int,
        key_size,
        value_size,
        max_entries,
        span: Span::default(),
        init: Vec::new(),
    }
}

/// Concatenates instruction groups, so two-slot `ld_imm64`s sit among single instructions.
pub fn asm(parts: &[&[Insn]]) -> Vec<Insn> {
    parts.concat()
}

/// `dst = imm` for any 64-bit immediate.
pub fn ld64(dst: u8, imm: u64) -> [Insn; 2] {
    Insn::ld_imm64(dst, 0, imm)
}

/// `r0 = r1; exit`, to return whatever a test left in r1.
pub const RET_R1: [Insn; 2] = [Insn::mov64_reg(R0, R1), Insn::exit()];

/// A host that delegates to a [`MemHost`], logs every map call, and serves `probe_read*` from a
/// pretend foreign address space of one string at [`FOREIGN`].
pub struct Recorder {
    pub inner: MemHost,
    pub log: Vec<String>,
}

/// Where [`Recorder`]'s foreign memory starts, and what it holds.
pub const FOREIGN: u64 = 0x7fff_0000_1000;
pub const FOREIGN_BYTES: &[u8] = b"foreign\0";

impl Recorder {
    pub fn new(maps: &[MapDef]) -> Recorder {
        Recorder {
            inner: MemHost::new(maps, Endian::Little),
            log: Vec::new(),
        }
    }
}

impl Host for Recorder {
    fn map_lookup(&mut self, map: u32, key: &[u8], value: &mut [u8]) -> bool {
        self.log.push(format!("lookup {map} {key:?}"));
        self.inner.map_lookup(map, key, value)
    }
    fn map_update(&mut self, map: u32, key: &[u8], value: &[u8], flags: u64) -> i64 {
        self.log
            .push(format!("update {map} {key:?} {value:?} {flags}"));
        self.inner.map_update(map, key, value, flags)
    }
    fn map_delete(&mut self, map: u32, key: &[u8]) -> i64 {
        self.log.push(format!("delete {map} {key:?}"));
        self.inner.map_delete(map, key)
    }
    fn map_next_key(&mut self, map: u32, key: Option<&[u8]>, next: &mut [u8]) -> i64 {
        self.inner.map_next_key(map, key, next)
    }
    fn map_clear(&mut self, map: u32) -> i64 {
        self.inner.map_clear(map)
    }
    fn map_count(&mut self, map: u32) -> u64 {
        self.inner.map_count(map)
    }
    fn output(&mut self, map: u32, flags: u64, record: &[u8]) -> i64 {
        self.inner.output(map, flags, record)
    }
    fn ktime_ns(&mut self) -> u64 {
        self.inner.ktime_ns()
    }
    fn wall_clock_ns(&mut self) -> u64 {
        self.inner.wall_clock_ns()
    }
    fn cpu(&mut self) -> u32 {
        self.inner.cpu()
    }
    fn pid_tgid(&mut self) -> u64 {
        self.inner.pid_tgid()
    }
    fn uid_gid(&mut self) -> u64 {
        self.inner.uid_gid()
    }
    fn comm(&mut self) -> [u8; 16] {
        self.inner.comm()
    }
    fn probe_read(&mut self, space: ktap_vm::Space, addr: u64, buf: &mut [u8]) -> i64 {
        self.log
            .push(format!("probe_read {space:?} {addr:#x} {}", buf.len()));
        let start = addr.wrapping_sub(FOREIGN) as usize;
        match FOREIGN_BYTES.get(start..start.saturating_add(buf.len())) {
            Some(bytes) if addr >= FOREIGN => {
                buf.copy_from_slice(bytes);
                0
            }
            _ => -ktap_vm::EFAULT,
        }
    }
    fn probe_read_str(&mut self, space: ktap_vm::Space, addr: u64, buf: &mut [u8]) -> i64 {
        self.log
            .push(format!("probe_read_str {space:?} {addr:#x} {}", buf.len()));
        if addr != FOREIGN || buf.is_empty() {
            return -ktap_vm::EFAULT;
        }
        let s = &FOREIGN_BYTES[..FOREIGN_BYTES.len() - 1];
        let n = s.len().min(buf.len() - 1);
        buf[..n].copy_from_slice(&s[..n]);
        buf[n] = 0;
        n as i64 + 1
    }
}
