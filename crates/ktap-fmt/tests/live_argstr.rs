//! `argstr::render` against the running kernel's own rendering: the same events are read raw
//! through perf (the bytes a probe sees) and as text from a tracefs instance of our own, and
//! every line the kernel wrote for the workload must be one we render. Needs root and tracefs;
//! says so and checks nothing elsewhere. The instance is removed whatever happens, and the
//! global tracefs state is never touched.

use std::collections::HashSet;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;

use ktap_bpf::kernel::{parse_tp_format, TpFormat};
use ktap_bpf::Endian;
use ktap_fmt::argstr::Renderer;

const TRACEFS: &str = "/sys/kernel/tracing";
const EVENTS: [(&str, &str); 3] = [
    ("sched", "sched_process_exec"),
    ("sched", "sched_switch"),
    ("syscalls", "sys_enter_openat"),
];
/// Data pages of each perf ring (a power of two).
const PAGES: usize = 64;

/// A tracefs instance, removed when dropped.
struct Instance(PathBuf);

impl Instance {
    fn new() -> Option<Instance> {
        let dir = PathBuf::from(TRACEFS)
            .join("instances")
            .join(format!("ktap-argstr-test-{}", std::process::id()));
        fs::create_dir(&dir).ok()?;
        Some(Instance(dir))
    }

    fn enable(&self, (cat, name): (&str, &str), on: bool) {
        let path = self.0.join("events").join(cat).join(name).join("enable");
        fs::write(path, if on { "1" } else { "0" }).unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for ev in EVENTS {
            let path = self.0.join("events").join(ev.0).join(ev.1).join("enable");
            let _ = fs::write(path, "0");
        }
        let _ = fs::remove_dir(&self.0);
    }
}

/// One perf ring of tracepoint `id` on `cpu`, recording every event's raw record.
struct Ring {
    _fd: OwnedFd,
    base: *mut u8,
    len: usize,
}

impl Ring {
    fn open(id: u32, cpu: i32) -> Option<Ring> {
        let mut attr = [0u8; 128];
        let put = |a: &mut [u8; 128], at: usize, v: &[u8]| a[at..at + v.len()].copy_from_slice(v);
        put(&mut attr, 0, &2u32.to_ne_bytes()); // PERF_TYPE_TRACEPOINT
        put(&mut attr, 4, &128u32.to_ne_bytes());
        put(&mut attr, 8, &u64::from(id).to_ne_bytes());
        put(&mut attr, 16, &1u64.to_ne_bytes()); // every event
        put(&mut attr, 24, &(1u64 << 10).to_ne_bytes()); // PERF_SAMPLE_RAW
        put(&mut attr, 48, &1u32.to_ne_bytes()); // wakeup_events
                                                 // SAFETY: perf_event_open reads `attr` (128 bytes, zero-filled past the fields set).
        let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), -1, cpu, -1, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just returned this descriptor to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let len = (PAGES + 1) * 4096;
        // SAFETY: a shared read-write mapping of the perf ring, unmapped in Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        (base != libc::MAP_FAILED).then(|| Ring {
            _fd: fd,
            base: base.cast(),
            len,
        })
    }

    /// The raw records in the ring (read once, after the workload).
    fn records(&self) -> Vec<Vec<u8>> {
        // SAFETY: data_head is at offset 1024 of the mapped header page.
        let head = unsafe { std::ptr::read_volatile(self.base.add(1024).cast::<u64>()) } as usize;
        let size = PAGES * 4096;
        let data = |at: usize| {
            // SAFETY: the index is reduced modulo the data area, which follows the header page.
            unsafe { *self.base.add(4096 + at % size) }
        };
        let bytes = |at: usize, n: usize| (0..n).map(|i| data(at + i)).collect::<Vec<u8>>();
        let mut out = Vec::new();
        let mut at = head.saturating_sub(size);
        while at + 8 <= head {
            let h = bytes(at, 8);
            let kind = u32::from_ne_bytes(h[0..4].try_into().unwrap());
            let len = u16::from_ne_bytes(h[6..8].try_into().unwrap()) as usize;
            if len < 8 {
                break;
            }
            if kind == 9 {
                // PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW: a u32 size, then the record.
                let n = u32::from_ne_bytes(bytes(at + 8, 4).try_into().unwrap()) as usize;
                out.push(bytes(at + 12, n.min(len.saturating_sub(12))));
            }
            at += len;
        }
        out
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping what `open` mapped; the descriptor closes after.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn format(cat: &str, name: &str) -> TpFormat {
    let text = fs::read_to_string(format!("{TRACEFS}/events/{cat}/{name}/format")).unwrap();
    parse_tp_format(cat, &text).unwrap()
}

/// What one run of the workload gave: our renderings of the raw records, the kernel's trace
/// text, and how many raw records each event had. `None` when this machine cannot do it.
fn capture() -> Option<(HashSet<String>, String, Vec<usize>)> {
    let instance = Instance::new()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    let formats: Vec<TpFormat> = EVENTS.iter().map(|(c, n)| format(c, n)).collect();
    let mut rings = Vec::new();
    for (i, f) in formats.iter().enumerate() {
        for cpu in 0..cpus {
            rings.push((i, Ring::open(f.id, cpu)?));
        }
    }
    for ev in EVENTS {
        instance.enable(ev, true);
    }
    let child = Command::new("/bin/cat")
        .arg("/etc/hostname")
        .output()
        .unwrap();
    assert!(child.status.success());
    for ev in EVENTS {
        instance.enable(ev, false);
    }
    let trace = fs::read_to_string(instance.0.join("trace")).unwrap();
    drop(instance);
    let renderers: Vec<Renderer> = formats.iter().map(Renderer::new).collect();
    let mut ours = HashSet::new();
    let mut counts = vec![0; EVENTS.len()];
    for (i, ring) in &rings {
        for rec in ring.records() {
            counts[*i] += 1;
            ours.insert(renderers[*i].render(&rec, Endian::host()));
        }
    }
    Some((ours, trace, counts))
}

#[test]
fn rendered_records_match_the_kernels_trace() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || !PathBuf::from(TRACEFS).join("instances").exists() {
        eprintln!("not root, or no tracefs at {TRACEFS}: nothing compared");
        return;
    }
    // Now and then perf gets no record of an event the instance saw (other tracers' programs
    // attach to the same syscall tracepoints while tests run concurrently); such a run proves
    // nothing either way, so it is run again.
    // Each capture is judged by the kernel's lines for the workload (`cat`, after
    // "TIMESTAMP: "): every kind of event must have lines rendered exactly as the kernel wrote
    // them. perf and the instance each may miss an event the other saw (other tracers attach
    // to the same tracepoints while tests run; the last switch of an exiting task races the
    // end of the capture), so a capture that proves nothing is taken again, a few times.
    const KINDS: [&str; 3] = [
        "sched_process_exec: filename=/bin/cat ",
        "sys_openat(",
        "sched_switch: ",
    ];
    let mut last = String::new();
    for _ in 0..8 {
        let Some((ours, trace, _counts)) = capture() else {
            eprintln!("no tracefs instance or perf events here: nothing compared");
            return;
        };
        let theirs: Vec<&str> = trace
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("cat"))
            .filter_map(|l| l.split_once(": ").map(|(_, event)| event))
            .collect();
        let missing: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| !theirs.iter().any(|l| l.starts_with(k) && ours.contains(*l)))
            .collect();
        if missing.is_empty() {
            return;
        }
        last = format!("no line of these kinds rendered as the kernel wrote it: {missing:?}\n{trace}\nours: {ours:#?}");
    }
    panic!("{last}");
}
