//! The helper functions programs may call: one prototype table that the compiler, the verifier
//! and the VM all read, so they agree on numbers, argument kinds and results.

/// What a helper expects in one argument register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Any initialised scalar.
    Scalar,
    /// Any initialised value, number or pointer (the kernel's `ARG_ANYTHING`): the address a
    /// `probe_read` reads from may be a pointer into the program's own stack.
    Anything,
    /// A map reference loaded with `ld_imm64` (`src = BPF_PSEUDO_MAP_FD`).
    Map,
    /// A pointer to initialised memory of the map's key size.
    MapKey,
    /// A pointer to initialised memory of the map's value size.
    MapValue,
    /// The program's context pointer (`r1` at entry).
    Ctx,
    /// A pointer to initialised memory whose size is the next argument.
    Mem,
    /// A pointer to memory the helper writes; its size is the next argument.
    UninitMem,
    /// The size of the preceding memory argument: a bounded scalar, at least 1.
    Size,
    /// The size of the preceding memory argument: a bounded scalar, possibly 0.
    SizeOrZero,
    /// A per-CPU kernel variable, as `ld_imm64` with `src = BPF_PSEUDO_BTF_ID` names it.
    Ksym,
}

/// What a helper leaves in `r0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A scalar (a value or an error code).
    Scalar,
    /// A pointer to the map's value, or 0 when there is none: it must be tested before use.
    MapValueOrNull,
    /// A pointer to kernel memory the program may read but not write (never null).
    RdonlyMem,
}

/// One helper's prototype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Helper {
    pub id: i32,
    pub name: &'static str,
    pub args: &'static [Arg],
    pub ret: Ret,
    /// True for helpers only ktap's userspace VM provides; the kernel never sees these.
    pub user_only: bool,
}

const fn kernel(id: i32, name: &'static str, args: &'static [Arg], ret: Ret) -> Helper {
    Helper {
        id,
        name,
        args,
        ret,
        user_only: false,
    }
}

const fn user(id: i32, name: &'static str, args: &'static [Arg], ret: Ret) -> Helper {
    Helper {
        id,
        name,
        args,
        ret,
        user_only: true,
    }
}

use Arg::*;

pub const MAP_LOOKUP_ELEM: i32 = 1;
pub const MAP_UPDATE_ELEM: i32 = 2;
pub const MAP_DELETE_ELEM: i32 = 3;
pub const PROBE_READ: i32 = 4;
pub const KTIME_GET_NS: i32 = 5;
pub const GET_SMP_PROCESSOR_ID: i32 = 8;
pub const GET_CURRENT_PID_TGID: i32 = 14;
pub const GET_CURRENT_UID_GID: i32 = 15;
pub const GET_CURRENT_COMM: i32 = 16;
/// `get_current_task()`: the current `struct task_struct *`, as a number.
pub const GET_CURRENT_TASK: i32 = 35;
/// This CPU's copy of a per-CPU kernel variable (kernel 5.10).
pub const THIS_CPU_PTR: i32 = 154;
pub const PERF_EVENT_OUTPUT: i32 = 25;
pub const GET_STACKID: i32 = 27;
/// `get_stackid` flag: the user stack rather than the kernel's.
pub const BPF_F_USER_STACK: u64 = 1 << 8;
pub const PROBE_READ_STR: i32 = 45;
pub const PROBE_READ_USER: i32 = 112;
pub const PROBE_READ_KERNEL: i32 = 113;
pub const PROBE_READ_USER_STR: i32 = 114;
pub const PROBE_READ_KERNEL_STR: i32 = 115;

/// `flags` of `map_update_elem`: create or replace.
pub const BPF_ANY: u64 = 0;
/// `flags` of `map_update_elem`: create only; an existing key is an error (`-EEXIST`).
pub const BPF_NOEXIST: u64 = 1;
/// `flags` of `map_update_elem`: replace only; a missing key is an error (`-ENOENT`).
pub const BPF_EXIST: u64 = 2;

/// First id of the userspace-only helpers, far above any kernel helper number.
pub const USER_BASE: i32 = 0x7000_0000;
/// `next_key(map, key_or_null, next)`: 0 and `next` written, or nonzero at the end.
/// A null key (`r2 == 0`) asks for the first key.
pub const USER_MAP_NEXT_KEY: i32 = USER_BASE;
/// `map_clear(map)`: removes every entry; returns 0.
pub const USER_MAP_CLEAR: i32 = USER_BASE + 1;
/// `map_count(map)`: the number of entries.
pub const USER_MAP_COUNT: i32 = USER_BASE + 2;
/// `wall_clock_ns()`: nanoseconds since the Unix epoch.
pub const USER_WALL_CLOCK_NS: i32 = USER_BASE + 3;
/// `num_cpus()`: the number of online CPUs.
pub const USER_NUM_CPUS: i32 = USER_BASE + 4;
/// `kernel_release(buf, size)`: the running kernel's release (`uname -r`), NUL-padded to
/// `size` bytes (cut to `size - 1`); returns 0.
pub const USER_KERNEL_RELEASE: i32 = USER_BASE + 5;

/// Every helper ktap programs may call, sorted by id.
pub static HELPERS: &[Helper] = &[
    kernel(
        MAP_LOOKUP_ELEM,
        "map_lookup_elem",
        &[Map, MapKey],
        Ret::MapValueOrNull,
    ),
    kernel(
        MAP_UPDATE_ELEM,
        "map_update_elem",
        &[Map, MapKey, MapValue, Scalar],
        Ret::Scalar,
    ),
    kernel(
        MAP_DELETE_ELEM,
        "map_delete_elem",
        &[Map, MapKey],
        Ret::Scalar,
    ),
    kernel(
        PROBE_READ,
        "probe_read",
        &[UninitMem, SizeOrZero, Anything],
        Ret::Scalar,
    ),
    kernel(KTIME_GET_NS, "ktime_get_ns", &[], Ret::Scalar),
    kernel(
        GET_SMP_PROCESSOR_ID,
        "get_smp_processor_id",
        &[],
        Ret::Scalar,
    ),
    kernel(
        GET_CURRENT_PID_TGID,
        "get_current_pid_tgid",
        &[],
        Ret::Scalar,
    ),
    kernel(GET_CURRENT_UID_GID, "get_current_uid_gid", &[], Ret::Scalar),
    kernel(
        GET_CURRENT_COMM,
        "get_current_comm",
        &[UninitMem, Size],
        Ret::Scalar,
    ),
    kernel(
        PERF_EVENT_OUTPUT,
        "perf_event_output",
        &[Ctx, Map, Scalar, Mem, SizeOrZero],
        Ret::Scalar,
    ),
    kernel(GET_STACKID, "get_stackid", &[Ctx, Map, Scalar], Ret::Scalar),
    kernel(GET_CURRENT_TASK, "get_current_task", &[], Ret::Scalar),
    kernel(
        PROBE_READ_STR,
        "probe_read_str",
        &[UninitMem, SizeOrZero, Anything],
        Ret::Scalar,
    ),
    kernel(
        PROBE_READ_USER,
        "probe_read_user",
        &[UninitMem, SizeOrZero, Anything],
        Ret::Scalar,
    ),
    kernel(
        PROBE_READ_KERNEL,
        "probe_read_kernel",
        &[UninitMem, SizeOrZero, Anything],
        Ret::Scalar,
    ),
    kernel(
        PROBE_READ_USER_STR,
        "probe_read_user_str",
        &[UninitMem, SizeOrZero, Anything],
        Ret::Scalar,
    ),
    kernel(
        PROBE_READ_KERNEL_STR,
        "probe_read_kernel_str",
        &[UninitMem, SizeOrZero, Anything],
        Ret::Scalar,
    ),
    kernel(THIS_CPU_PTR, "this_cpu_ptr", &[Ksym], Ret::RdonlyMem),
    user(
        USER_MAP_NEXT_KEY,
        "ktap_map_next_key",
        &[Map, Scalar, UninitMem],
        Ret::Scalar,
    ),
    user(USER_MAP_CLEAR, "ktap_map_clear", &[Map], Ret::Scalar),
    user(USER_MAP_COUNT, "ktap_map_count", &[Map], Ret::Scalar),
    user(USER_WALL_CLOCK_NS, "ktap_wall_clock_ns", &[], Ret::Scalar),
    user(USER_NUM_CPUS, "ktap_num_cpus", &[], Ret::Scalar),
    user(
        USER_KERNEL_RELEASE,
        "ktap_kernel_release",
        &[UninitMem, Size],
        Ret::Scalar,
    ),
];

/// The prototype of helper `id`, if ktap knows it.
pub fn lookup(id: i32) -> Option<&'static Helper> {
    HELPERS
        .binary_search_by_key(&id, |h| h.id)
        .ok()
        .map(|i| &HELPERS[i])
}

/// The prototype of the helper called `name` (without the `bpf_` prefix).
pub fn by_name(name: &str) -> Option<&'static Helper> {
    let name = name.strip_prefix("bpf_").unwrap_or(name);
    HELPERS.iter().find(|h| h.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in HELPERS.windows(2) {
            assert!(w[0].id < w[1].id, "{} before {}", w[0].name, w[1].name);
        }
        assert_eq!(lookup(GET_CURRENT_COMM).unwrap().name, "get_current_comm");
        assert_eq!(by_name("bpf_map_lookup_elem").unwrap().id, 1);
        assert!(lookup(9999).is_none());
    }
}
