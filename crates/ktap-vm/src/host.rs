//! The [`Host`] trait: everything a helper call needs from outside the VM (maps, output, time,
//! the current task, foreign memory), and the error numbers helpers return.

/// No such entry (`-ENOENT` from update with `BPF_EXIST`, delete, next_key at the end).
pub const ENOENT: i64 = 2;
/// The map is full (`-E2BIG` from an update that would add a key).
pub const E2BIG: i64 = 7;
/// A memory read failed (`-EFAULT` from `probe_read*`).
pub const EFAULT: i64 = 14;
/// The key exists (`-EEXIST` from an update with `BPF_NOEXIST`).
pub const EEXIST: i64 = 17;
/// The request makes no sense for this map (`-EINVAL`).
pub const EINVAL: i64 = 22;

/// The address space a `probe_read*` helper reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// `probe_read_kernel*`.
    Kernel,
    /// `probe_read_user*`.
    User,
    /// The legacy `probe_read`/`probe_read_str`: kernel or user, as the architecture's shared
    /// address space allows.
    Any,
}

/// The world outside the VM, as helpers see it. The loader implements it over the live kernel
/// maps; [`crate::MemHost`] implements it in memory.
///
/// Maps are named by their index in [`crate::RunEnv::maps`]. Keys and values are passed as bytes
/// of exactly the map's key and value size, in the target's byte order. Results that can fail
/// are 0 or a negative errno, as the kernel's helpers return them to the program.
pub trait Host {
    /// Copies the value stored under `key` into `value` (the map's value size) and returns true,
    /// or returns false when the map holds no such key.
    fn map_lookup(&mut self, map: u32, key: &[u8], value: &mut [u8]) -> bool;
    /// Stores `value` under `key`; `flags` is `BPF_ANY`, `BPF_NOEXIST` or `BPF_EXIST`.
    fn map_update(&mut self, map: u32, key: &[u8], value: &[u8], flags: u64) -> i64;
    /// Removes `key`.
    fn map_delete(&mut self, map: u32, key: &[u8]) -> i64;
    /// Writes into `next` the key after `key` (the first key when `key` is `None`) and returns
    /// 0, or returns `-ENOENT` when there is none.
    fn map_next_key(&mut self, map: u32, key: Option<&[u8]>, next: &mut [u8]) -> i64;
    /// Removes every entry (array maps: zeroes every value).
    fn map_clear(&mut self, map: u32) -> i64;
    /// The number of entries.
    fn map_count(&mut self, map: u32) -> u64;
    /// Delivers one `perf_event_output` record written to perf-event-array `map`.
    fn output(&mut self, map: u32, flags: u64, record: &[u8]) -> i64;
    /// Nanoseconds of monotonic time (`ktime_get_ns`).
    fn ktime_ns(&mut self) -> u64;
    /// Nanoseconds since the Unix epoch.
    fn wall_clock_ns(&mut self) -> u64;
    /// The CPU the event happened on.
    fn cpu(&mut self) -> u32;
    /// `tgid << 32 | pid` of the current task.
    fn pid_tgid(&mut self) -> u64;
    /// `gid << 32 | uid` of the current task.
    fn uid_gid(&mut self) -> u64;
    /// The current task's name, NUL-padded.
    fn comm(&mut self) -> [u8; 16];
    /// The current task's `struct task_struct` address (`get_current_task`); 0 where there
    /// is no kernel to ask, so reads through it fail.
    fn current_task(&mut self) -> u64 {
        0
    }
    /// The number of online CPUs (`num_cpus()`).
    fn num_cpus(&mut self) -> u32 {
        1
    }
    /// The running kernel's release, as `uname -r` prints it (`kernel_v()`).
    fn kernel_release(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// Fills `buf` from `addr` in `space` and returns 0, or a negative errno. Addresses inside
    /// the VM never reach the host: the VM serves them itself.
    fn probe_read(&mut self, space: Space, addr: u64, buf: &mut [u8]) -> i64 {
        let _ = (space, addr, buf);
        -EFAULT
    }
    /// Copies the NUL-terminated string at `addr` into `buf`, at most `buf.len() - 1` bytes and
    /// a NUL, and returns the length including the NUL, or a negative errno.
    fn probe_read_str(&mut self, space: Space, addr: u64, buf: &mut [u8]) -> i64 {
        let _ = (space, addr, buf);
        -EFAULT
    }
}
