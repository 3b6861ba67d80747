//! Helper calls: checks each argument as the helper's prototype demands, moves bytes between VM
//! memory and the [`crate::Host`], and keeps map value copies coherent with the maps.

use crate::host::{Space, EFAULT};
use crate::interp::{access_message, Access, Vm};
use crate::mem::{decode, type_name, Kind, Ptr, MAX_VALUES};
use crate::Fault;
use ktap_bpf::helpers::{self, *};
use ktap_bpf::MapKind;

/// The largest map value the VM copies out of a map, far above what ktap's maps use; it keeps a
/// corrupt map definition from asking for gigabytes.
const MAX_VALUE_SIZE: u32 = 1 << 20;

impl Vm<'_, '_> {
    /// Calls helper `id` with the arguments in r1-r5 and returns what it leaves in r0.
    pub(crate) fn call_helper(&mut self, pc: usize, id: i32) -> Result<u64, Fault> {
        self.helper(id).map_err(|m| Fault::new(pc, m))
    }

    fn helper(&mut self, id: i32) -> Result<u64, String> {
        let r = self.regs;
        match id {
            MAP_LOOKUP_ELEM => {
                let map = self.map_arg(1, id)?;
                self.mem.flush(&mut *self.host);
                self.read_key(2, map)?;
                let size = self.value_size(map)?;
                self.value.clear();
                self.value.resize(size, 0);
                if !self.host.map_lookup(map, &self.key, &mut self.value) {
                    return Ok(0);
                }
                self.mem
                    .hold(map, &self.key, &self.value, self.env.read_only(map))
                    .ok_or_else(|| {
                        format!("more than {MAX_VALUES} map values looked up in one run")
                    })
            }
            MAP_UPDATE_ELEM => {
                let map = self.map_arg(1, id)?;
                self.mem.flush(&mut *self.host);
                self.read_key(2, map)?;
                let size = self.value_size(map)?;
                let value = self
                    .mem
                    .read(r[3], size as u64)
                    .map_err(|e| access_message(e, 3, Access::Indirect))?;
                self.value.clear();
                self.value.extend_from_slice(value);
                let ret = self.host.map_update(map, &self.key, &self.value, r[4]);
                if ret == 0 {
                    self.mem.refresh(map, &self.key, &self.value);
                }
                Ok(ret as u64)
            }
            MAP_DELETE_ELEM => {
                let map = self.map_arg(1, id)?;
                self.mem.flush(&mut *self.host);
                self.read_key(2, map)?;
                Ok(self.host.map_delete(map, &self.key) as u64)
            }
            PROBE_READ => self.probe_read(Space::Any, false),
            PROBE_READ_KERNEL => self.probe_read(Space::Kernel, false),
            PROBE_READ_USER => self.probe_read(Space::User, false),
            PROBE_READ_STR => self.probe_read(Space::Any, true),
            PROBE_READ_KERNEL_STR => self.probe_read(Space::Kernel, true),
            PROBE_READ_USER_STR => self.probe_read(Space::User, true),
            KTIME_GET_NS => Ok(self.host.ktime_ns()),
            GET_SMP_PROCESSOR_ID => Ok(u64::from(self.host.cpu())),
            GET_CURRENT_PID_TGID => Ok(self.host.pid_tgid()),
            GET_CURRENT_UID_GID => Ok(self.host.uid_gid()),
            GET_CURRENT_COMM => {
                if r[2] == 0 {
                    return Err("R2 invalid zero-sized read".into());
                }
                let comm = self.host.comm();
                let buf = self
                    .mem
                    .write(r[1], r[2])
                    .map_err(|e| access_message(e, 1, Access::Indirect))?;
                // Like the kernel's strscpy_pad: NUL-terminated, the rest zeroed.
                buf.fill(0);
                let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
                let n = len.min(buf.len() - 1);
                buf[..n].copy_from_slice(&comm[..n]);
                Ok(0)
            }
            PERF_EVENT_OUTPUT => {
                if !matches!(
                    decode(r[1]),
                    Some(Ptr {
                        kind: Kind::Ctx,
                        off: 0,
                        ..
                    })
                ) {
                    return Err(format!("R1 type={} expected=ctx", type_name(r[1])));
                }
                let map = self.map_arg(2, id)?;
                // The host may act on a record at once (print a table, say), so it must see
                // the maps as the program left them.
                self.mem.flush(&mut *self.host);
                let record = self
                    .mem
                    .read(r[4], r[5])
                    .map_err(|e| access_message(e, 4, Access::Indirect))?;
                Ok(self.host.output(map, r[3], record) as u64)
            }
            USER_MAP_NEXT_KEY => {
                let map = self.map_arg(1, id)?;
                self.mem.flush(&mut *self.host);
                let first = r[2] == 0;
                if !first {
                    self.read_key(2, map)?;
                }
                let size = self.key_size(map);
                let next = self
                    .mem
                    .write(r[3], size)
                    .map_err(|e| access_message(e, 3, Access::Indirect))?;
                let key = if first { None } else { Some(&self.key[..]) };
                Ok(self.host.map_next_key(map, key, next) as u64)
            }
            USER_MAP_CLEAR => {
                let map = self.map_arg(1, id)?;
                self.mem.flush(&mut *self.host);
                Ok(self.host.map_clear(map) as u64)
            }
            USER_MAP_COUNT => {
                let map = self.map_arg(1, id)?;
                self.mem.flush(&mut *self.host);
                Ok(self.host.map_count(map))
            }
            USER_WALL_CLOCK_NS => Ok(self.host.wall_clock_ns()),
            USER_NUM_CPUS => Ok(u64::from(self.host.num_cpus())),
            GET_CURRENT_TASK => Ok(self.host.current_task()),
            THIS_CPU_PTR => Ok(crate::mem::pointer(Kind::Kernel, 0, 0)),
            USER_KERNEL_RELEASE => {
                if r[2] == 0 {
                    return Err("R2 invalid zero-sized read".into());
                }
                let release = self.host.kernel_release();
                let buf = self
                    .mem
                    .write(r[1], r[2])
                    .map_err(|e| access_message(e, 1, Access::Indirect))?;
                buf.fill(0);
                let n = release.len().min(buf.len() - 1);
                buf[..n].copy_from_slice(&release[..n]);
                Ok(0)
            }
            _ => Err(format!("invalid func unknown#{id}")),
        }
    }

    /// The map register `reg` refers to, checked to be of a kind helper `id` accepts.
    fn map_arg(&self, reg: usize, id: i32) -> Result<u32, String> {
        let v = self.regs[reg];
        let map = match decode(v) {
            Some(Ptr {
                kind: Kind::MapRef,
                index,
                off: 0,
            }) => index,
            _ => return Err(format!("R{reg} type={} expected=map_ptr", type_name(v))),
        };
        let Some(def) = self.env.maps.get(map as usize) else {
            return Err(format!("R{reg} type=scalar expected=map_ptr"));
        };
        let events = def.kind == MapKind::PerfEventArray;
        if events != (id == PERF_EVENT_OUTPUT) {
            let name = helpers::lookup(id).map_or("?", |h| h.name);
            return Err(format!(
                "cannot pass map_type {} into func {name}#{id}",
                def.kind as u32
            ));
        }
        Ok(map)
    }

    fn key_size(&self, map: u32) -> u64 {
        self.env
            .maps
            .get(map as usize)
            .map_or(0, |m| u64::from(m.key_size))
    }

    fn value_size(&self, map: u32) -> Result<usize, String> {
        let m = self.env.maps.get(map as usize);
        match m.map(|m| m.value_size) {
            Some(size) if size <= MAX_VALUE_SIZE => Ok(size as usize),
            _ => Err(format!(
                "map {} has a value_size above the VM's limit of {MAX_VALUE_SIZE}",
                m.map_or("?", |m| m.name.as_str())
            )),
        }
    }

    /// Copies the key of `map` that register `reg` points at into `self.key`.
    fn read_key(&mut self, reg: usize, map: u32) -> Result<(), String> {
        let size = self.key_size(map);
        let key = self
            .mem
            .read(self.regs[reg], size)
            .map_err(|e| access_message(e, reg, Access::Indirect))?;
        self.key.clear();
        self.key.extend_from_slice(key);
        Ok(())
    }

    /// `probe_read*(dst, size, src)`: fills `dst` from `src`, which the VM serves itself when it
    /// points into VM memory (kernel memory, to the program) and the host otherwise. On failure
    /// `dst` is zeroed, as in the kernel; a string read leaves the bytes after its NUL alone.
    fn probe_read(&mut self, space: Space, string: bool) -> Result<u64, String> {
        let (dst, size, src) = (self.regs[1], self.regs[2], self.regs[3]);
        let n = self
            .mem
            .write(dst, size)
            .map_err(|e| access_message(e, 1, Access::Indirect))?
            .len();
        self.value.clear();
        self.value.resize(n, 0);
        let ret = match (decode(src), space) {
            (Some(_), Space::User) => -EFAULT,
            (Some(_), _) => self.read_vm(src, string),
            (None, _) if string => self.host.probe_read_str(space, src, &mut self.value),
            (None, _) => self.host.probe_read(space, src, &mut self.value),
        };
        let copied = if ret < 0 {
            self.value.fill(0);
            n
        } else if string {
            (ret as u64).min(n as u64) as usize
        } else {
            n
        };
        let out = self
            .mem
            .write(dst, size)
            .map_err(|e| access_message(e, 1, Access::Indirect))?;
        out[..copied].copy_from_slice(&self.value[..copied]);
        Ok(ret as u64)
    }

    /// Reads VM memory at `src` into `self.value` for `probe_read*`: 0 or the string's length
    /// with its NUL, or `-EFAULT` where the memory ends first.
    fn read_vm(&mut self, src: u64, string: bool) -> i64 {
        let n = self.value.len();
        if !string {
            return match self.mem.read(src, n as u64) {
                Ok(bytes) => {
                    self.value.copy_from_slice(bytes);
                    0
                }
                Err(_) => -EFAULT,
            };
        }
        if n == 0 {
            return 0;
        }
        let Ok(avail) = self.mem.read_up_to(src, n as u64) else {
            return -EFAULT;
        };
        let limit = n - 1;
        let len = match avail.iter().take(limit).position(|&b| b == 0) {
            Some(len) => len,
            None if avail.len() >= limit => limit,
            None => return -EFAULT,
        };
        self.value[..len].copy_from_slice(&avail[..len]);
        self.value[len] = 0;
        len as i64 + 1
    }
}
