//! The BPF-less event source against the running kernel (as root): tracepoint samples carry the
//! raw record of exactly the events that happened, with the task's ids, and the task tracker
//! reports names as they change.

use std::time::Duration;

use ktap_bpf::kernel::Kernel as _;
use ktap_loader::perf_exec::{PerfExec, Record, Source};
use ktap_loader::TracefsKernel;

fn tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

#[test]
fn tracepoint_samples_are_exact_and_carry_the_raw_record() {
    let kernel = TracefsKernel::new().unwrap();
    let format = kernel.tp_format("syscalls", "sys_enter_getppid").unwrap();
    let exec = PerfExec::open(
        &[Source::Tracepoint {
            id: format.id.into(),
        }],
        16,
        false,
    );
    let mut exec = exec.unwrap();
    assert!(exec.events() >= 2);
    exec.enable().unwrap();
    // SAFETY: prctl(PR_SET_NAME) with a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"ktap-perf-test".as_ptr()) };
    for _ in 0..100 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    exec.disable();
    let me = tid();
    let (mut mine, mut named) = (0, false);
    let common_pid = format.field("common_pid").unwrap().offset as usize;
    while exec
        .poll(Duration::from_millis(10), &mut |r| match r {
            Record::Sample(s) if s.tid == me => {
                mine += 1;
                assert_eq!(s.source, 0);
                assert_eq!(s.pid, std::process::id());
                assert!(s.raw.len() >= format.size() as usize, "{}", s.raw.len());
                let pid = i32::from_ne_bytes(s.raw[common_pid..common_pid + 4].try_into().unwrap());
                assert_eq!(pid as u32, me);
                assert!(s.time_ns > 0);
            }
            Record::Comm { tid, comm, .. } if tid == me => {
                named |= comm == b"ktap-perf-test";
            }
            _ => {}
        })
        .unwrap()
        > 0
    {}
    assert_eq!(mine, 100);
    assert!(named, "no COMM record for this thread's new name");
    assert_eq!(exec.lost(), 0);
}

#[test]
fn cpu_clock_samples_have_an_ip() {
    let mut exec = PerfExec::open(
        &[Source::CpuClock {
            period_ns: 1_000_000,
        }],
        8,
        true,
    )
    .unwrap();
    exec.enable().unwrap();
    let until = std::time::Instant::now() + Duration::from_millis(50);
    let mut x = 0u64;
    while std::time::Instant::now() < until {
        x = x.wrapping_add(1);
    }
    std::hint::black_box(x);
    exec.disable();
    let mut ips = 0;
    exec.poll(Duration::from_millis(10), &mut |r| {
        if let Record::Sample(s) = r {
            ips += usize::from(s.ip != 0 && s.raw.is_empty());
        }
    })
    .unwrap();
    assert!(ips >= 10, "{ips} samples with an ip");
}

#[test]
fn samples_can_carry_the_user_stack() {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return;
    }
    let kernel = TracefsKernel::new().unwrap();
    let format = kernel.tp_format("syscalls", "sys_enter_getppid").unwrap();
    let mut exec = PerfExec::open(
        &[Source::Tracepoint {
            id: format.id.into(),
        }],
        16,
        true,
    )
    .unwrap();
    exec.enable().unwrap();
    let marker = std::hint::black_box([0x6b74_6170_u32; 4]);
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() };
    exec.disable();
    let me = tid();
    let at = marker.as_ptr() as u64;
    let mut found = false;
    exec.poll(Duration::from_millis(10), &mut |r| {
        if let Record::Sample(s) = r {
            if s.tid == me {
                let (sp, bytes) = s.stack.expect("the sample has the stack");
                let off = at
                    .checked_sub(sp)
                    .expect("the marker is above the stack pointer")
                    as usize;
                found = bytes.get(off..off + 4) == Some(&0x6b74_6170_u32.to_ne_bytes()[..]);
            }
        }
    })
    .unwrap();
    std::hint::black_box(marker);
    assert!(found, "the stack snapshot does not hold the local variable");
}
