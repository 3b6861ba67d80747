//! [`MemHost`]: a [`Host`] that keeps every map in memory with the kernel's update, delete and
//! capacity rules, collects output records, and reports a task and clocks its owner sets.

use crate::host::{Host, E2BIG, EEXIST, EINVAL, ENOENT};
use ktap_bpf::helpers::{BPF_EXIST, BPF_NOEXIST};
use ktap_bpf::{Endian, MapDef, MapKind};
use std::collections::BTreeMap;

/// The entries of one map.
enum Store {
    /// Hash maps, ordered by key bytes so iteration is stable and `next_key` works after a
    /// delete.
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// Array maps: the values written so far by index; every other index reads as zeroes, so a
    /// map of a million entries costs nothing until it is used.
    Array(BTreeMap<u32, Vec<u8>>),
    /// Perf event arrays hold no entries; their records go to [`MemHost::outputs`].
    Events,
}

/// The array index `key` names in `endian` order, if it is one below `max_entries`.
fn array_index(endian: Endian, max_entries: u32, key: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = key.try_into().ok()?;
    let i = match endian {
        Endian::Little => u32::from_le_bytes(bytes),
        Endian::Big => u32::from_be_bytes(bytes),
    };
    (i < max_entries).then_some(i)
}

struct Table {
    store: Store,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
}

/// Maps in memory, for runs without a kernel: dry runs, replays, kernels without BPF, tests.
/// Per-CPU maps behave as if there were one CPU.
pub struct MemHost {
    tables: Vec<Table>,
    endian: Endian,
    /// Every `perf_event_output` record, in order.
    pub outputs: Vec<Vec<u8>>,
    pub ktime_ns: u64,
    pub wall_clock_ns: u64,
    pub cpu: u32,
    pub pid_tgid: u64,
    pub uid_gid: u64,
    pub comm: [u8; 16],
    pub num_cpus: u32,
    pub kernel_release: Vec<u8>,
}

impl MemHost {
    /// Maps laid out as `maps` says, empty but for their initial entries, with array indices
    /// read in `endian` order.
    pub fn new(maps: &[MapDef], endian: Endian) -> MemHost {
        let tables = maps
            .iter()
            .map(|m| Table {
                store: match m.kind {
                    MapKind::Hash | MapKind::PercpuHash | MapKind::StackTrace => {
                        Store::Hash(BTreeMap::new())
                    }
                    MapKind::Array | MapKind::PercpuArray => {
                        Store::Array(m.init.iter().cloned().collect())
                    }
                    MapKind::PerfEventArray => Store::Events,
                },
                key_size: m.key_size as usize,
                value_size: m.value_size as usize,
                max_entries: m.max_entries,
            })
            .collect();
        MemHost {
            tables,
            endian,
            outputs: Vec::new(),
            ktime_ns: 0,
            wall_clock_ns: 0,
            cpu: 0,
            pid_tgid: 0,
            uid_gid: 0,
            comm: [0; 16],
            num_cpus: 1,
            kernel_release: Vec::new(),
        }
    }

    /// A copy of the value under `key` in `map`, if there is one.
    pub fn get(&self, map: u32, key: &[u8]) -> Option<Vec<u8>> {
        let t = self.tables.get(map as usize)?;
        let mut value = vec![0; t.value_size];
        self.lookup(map, key, &mut value).then_some(value)
    }

    fn index_key(&self, i: u32) -> [u8; 4] {
        match self.endian {
            Endian::Little => i.to_le_bytes(),
            Endian::Big => i.to_be_bytes(),
        }
    }

    fn lookup(&self, map: u32, key: &[u8], value: &mut [u8]) -> bool {
        let Some(t) = self.tables.get(map as usize) else {
            return false;
        };
        let found = match &t.store {
            Store::Hash(h) => h.get(key).map(Vec::as_slice),
            Store::Array(a) => array_index(self.endian, t.max_entries, key)
                .map(|i| a.get(&i).map_or(&[][..], Vec::as_slice)),
            Store::Events => None,
        };
        match found {
            Some(v) => {
                value.fill(0);
                let n = v.len().min(value.len());
                value[..n].copy_from_slice(&v[..n]);
                true
            }
            None => false,
        }
    }
}

impl Host for MemHost {
    fn map_lookup(&mut self, map: u32, key: &[u8], value: &mut [u8]) -> bool {
        self.lookup(map, key, value)
    }

    fn map_update(&mut self, map: u32, key: &[u8], value: &[u8], flags: u64) -> i64 {
        if flags > BPF_EXIST {
            return -EINVAL;
        }
        let endian = self.endian;
        let Some(t) = self.tables.get_mut(map as usize) else {
            return -EINVAL;
        };
        if key.len() != t.key_size || value.len() != t.value_size {
            return -EINVAL;
        }
        match &mut t.store {
            Store::Hash(h) => {
                let exists = h.contains_key(key);
                if exists && flags == BPF_NOEXIST {
                    return -EEXIST;
                }
                if !exists && flags == BPF_EXIST {
                    return -ENOENT;
                }
                if !exists && h.len() >= t.max_entries as usize {
                    return -E2BIG;
                }
                h.insert(key.to_vec(), value.to_vec());
                0
            }
            Store::Array(a) => {
                match array_index(endian, t.max_entries, key) {
                    Some(i) => {
                        // Every element of an array exists, as in the kernel.
                        if flags == BPF_NOEXIST {
                            return -EEXIST;
                        }
                        a.insert(i, value.to_vec());
                        0
                    }
                    None => -E2BIG,
                }
            }
            Store::Events => -EINVAL,
        }
    }

    fn map_delete(&mut self, map: u32, key: &[u8]) -> i64 {
        match self.tables.get_mut(map as usize).map(|t| &mut t.store) {
            Some(Store::Hash(h)) => {
                if h.remove(key).is_some() {
                    0
                } else {
                    -ENOENT
                }
            }
            _ => -EINVAL,
        }
    }

    fn map_next_key(&mut self, map: u32, key: Option<&[u8]>, next: &mut [u8]) -> i64 {
        let Some(t) = self.tables.get(map as usize) else {
            return -EINVAL;
        };
        let found: Option<Vec<u8>> = match &t.store {
            Store::Hash(h) => match key {
                None => h.keys().next().cloned(),
                Some(k) => h
                    .range::<[u8], _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))
                    .next()
                    .map(|(k, _)| k.clone()),
            },
            Store::Array(_) => {
                // As in the kernel, a key that is not an index starts over at the first.
                let i = match key.and_then(|k| array_index(self.endian, t.max_entries, k)) {
                    Some(i) => i.checked_add(1),
                    None => Some(0),
                };
                i.filter(|&i| i < t.max_entries)
                    .map(|i| self.index_key(i).to_vec())
            }
            Store::Events => None,
        };
        match found {
            Some(k) if k.len() == next.len() => {
                next.copy_from_slice(&k);
                0
            }
            Some(_) => -EINVAL,
            None => -ENOENT,
        }
    }

    fn map_clear(&mut self, map: u32) -> i64 {
        match self.tables.get_mut(map as usize).map(|t| &mut t.store) {
            Some(Store::Hash(h)) => h.clear(),
            Some(Store::Array(a)) => a.clear(),
            _ => return -EINVAL,
        }
        0
    }

    fn map_count(&mut self, map: u32) -> u64 {
        match self.tables.get(map as usize) {
            Some(Table {
                store: Store::Hash(h),
                ..
            }) => h.len() as u64,
            Some(Table {
                store: Store::Array(_),
                max_entries,
                ..
            }) => u64::from(*max_entries),
            _ => 0,
        }
    }

    fn output(&mut self, _map: u32, _flags: u64, record: &[u8]) -> i64 {
        self.outputs.push(record.to_vec());
        0
    }

    fn ktime_ns(&mut self) -> u64 {
        self.ktime_ns
    }

    fn wall_clock_ns(&mut self) -> u64 {
        self.wall_clock_ns
    }

    fn cpu(&mut self) -> u32 {
        self.cpu
    }

    fn pid_tgid(&mut self) -> u64 {
        self.pid_tgid
    }

    fn uid_gid(&mut self) -> u64 {
        self.uid_gid
    }

    fn comm(&mut self) -> [u8; 16] {
        self.comm
    }

    fn num_cpus(&mut self) -> u32 {
        self.num_cpus
    }

    fn kernel_release(&mut self) -> Vec<u8> {
        self.kernel_release.clone()
    }
}
