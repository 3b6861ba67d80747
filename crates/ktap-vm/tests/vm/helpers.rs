//! The helpers that are not about maps: clocks, the current task, `probe_read*`.

use super::*;
use ktap_bpf::helpers::*;

fn with_host(host: &mut dyn Host, ctx: &mut [u8], insns: &[Insn]) -> Result<u64, Fault> {
    exec_maps(insns, &[], host, ctx)
}

#[test]
fn clocks_and_task_come_from_the_host() {
    let mut host = MemHost::new(&[], Endian::Little);
    host.ktime_ns = 11;
    host.wall_clock_ns = 22;
    host.cpu = 3;
    host.pid_tgid = 44 << 32 | 45;
    host.uid_gid = 1000 << 32 | 1001;
    for (id, want) in [
        (KTIME_GET_NS, 11),
        (USER_WALL_CLOCK_NS, 22),
        (GET_SMP_PROCESSOR_ID, 3),
        (GET_CURRENT_PID_TGID, 44 << 32 | 45),
        (GET_CURRENT_UID_GID, 1000 << 32 | 1001),
    ] {
        let r = with_host(&mut host, &mut [], &[Insn::call(id), Insn::exit()]);
        assert_eq!(r, Ok(want), "helper {id}");
    }
}

/// Fills r10-16..r10 with 0xff and runs `body` (with r1 still the context) three times, to
/// return what it leaves in r0 and in those 16 bytes.
fn run16(host: &mut dyn Host, ctx: &mut [u8], body: &[Insn]) -> Result<(u64, [u8; 16]), Fault> {
    let mut out = [0u8; 16];
    let mut r0 = 0;
    for part in 0..3 {
        let finish: &[Insn] = match part {
            0 => &[Insn::exit()],
            1 => &[Insn::ldx(BPF_DW, R0, R10, -16), Insn::exit()],
            _ => &[Insn::ldx(BPF_DW, R0, R10, -8), Insn::exit()],
        };
        let prog = asm(&[
            &[Insn::mov64_reg(R6, R1)],
            &ld64(R1, u64::MAX),
            &[
                Insn::stx(BPF_DW, R10, -16, R1),
                Insn::stx(BPF_DW, R10, -8, R1),
                Insn::mov64_reg(R1, R6),
            ],
            body,
            finish,
        ]);
        let v = with_host(host, ctx, &prog)?;
        match part {
            0 => r0 = v,
            1 => out[..8].copy_from_slice(&v.to_le_bytes()),
            _ => out[8..].copy_from_slice(&v.to_le_bytes()),
        }
    }
    Ok((r0, out))
}

/// `get_current_comm(r10 - 16, size)`; the 16 bytes afterwards.
fn comm(host: &mut MemHost, size: i32) -> Result<[u8; 16], Fault> {
    let body = [
        Insn::mov64_reg(R1, R10),
        Insn::alu64_imm(BPF_ADD, R1, -16),
        Insn::mov64_imm(R2, size),
        Insn::call(GET_CURRENT_COMM),
    ];
    Ok(run16(host, &mut [], &body)?.1)
}

#[test]
fn get_current_comm_pads_and_terminates() {
    let mut host = MemHost::new(&[], Endian::Little);
    host.comm = *b"sshd\0\0\0\0\0\0\0\0\0\0\0\0";
    assert_eq!(
        &comm(&mut host, 16).unwrap(),
        b"sshd\0\0\0\0\0\0\0\0\0\0\0\0"
    );
    // A short buffer gets a truncated, NUL-terminated name; the bytes after it are untouched.
    let mut want = [0xffu8; 16];
    want[..4].copy_from_slice(b"ssh\0");
    assert_eq!(comm(&mut host, 4).unwrap(), want);
    // A name filling all 16 bytes loses its last byte to the NUL.
    host.comm = *b"abcdefghijklmnop";
    assert_eq!(&comm(&mut host, 16).unwrap(), b"abcdefghijklmno\0");
    assert_eq!(
        fault(comm(&mut host, 0)).message,
        "R2 invalid zero-sized read"
    );
    assert_eq!(
        fault(comm(&mut host, 17)).message,
        "invalid indirect access to stack R1 off=-16 size=17"
    );
}

/// `r0 = probe_read*(r10 - 16, size, src)` after `src` set r3; returns r0 and the 16 bytes
/// at r10 - 16, which start as 0xff.
fn probe(
    host: &mut dyn Host,
    ctx: &mut [u8],
    id: i32,
    size: i32,
    src: &[Insn],
) -> Result<(i64, [u8; 16]), Fault> {
    let body = asm(&[
        src,
        &[
            Insn::mov64_reg(R1, R10),
            Insn::alu64_imm(BPF_ADD, R1, -16),
            Insn::mov64_imm(R2, size),
            Insn::call(id),
        ],
    ]);
    let (r0, bytes) = run16(host, ctx, &body)?;
    Ok((r0 as i64, bytes))
}

/// `r3 = ctx + off` (r1 holds the context when `src` runs).
fn from_ctx(off: i32) -> [Insn; 2] {
    [Insn::mov64_reg(R3, R1), Insn::alu64_imm(BPF_ADD, R3, off)]
}

#[test]
fn probe_read_of_vm_memory_is_served_by_the_vm() {
    let mut host = Recorder::new(&[]);
    let mut ctx = *b"0123456789abcdefhi\0xyz";
    let (ret, bytes) = probe(&mut host, &mut ctx, PROBE_READ_KERNEL, 4, &from_ctx(2)).unwrap();
    assert_eq!(ret, 0);
    assert_eq!(&bytes[..6], b"2345\xff\xff");
    // Strings stop at the NUL and leave the rest of the buffer alone.
    let (ret, bytes) = probe(&mut host, &mut ctx, PROBE_READ_STR, 16, &from_ctx(16)).unwrap();
    assert_eq!(ret, 3);
    assert_eq!(&bytes[..4], b"hi\0\xff");
    // ... or at the buffer's end, which gets the NUL.
    let (ret, bytes) = probe(&mut host, &mut ctx, PROBE_READ_KERNEL_STR, 4, &from_ctx(0)).unwrap();
    assert_eq!(ret, 4);
    assert_eq!(&bytes[..5], b"012\0\xff");
    // Past the end of the context, the read fails and zeroes the destination.
    let (ret, bytes) = probe(&mut host, &mut ctx, PROBE_READ, 8, &from_ctx(20)).unwrap();
    assert_eq!(ret, -ktap_vm::EFAULT);
    assert_eq!(&bytes[..9], b"\0\0\0\0\0\0\0\0\xff");
    // A string running into the end of the region without a NUL fails too.
    let (ret, _) = probe(&mut host, &mut ctx, PROBE_READ_STR, 8, &from_ctx(19)).unwrap();
    assert_eq!(ret, -ktap_vm::EFAULT);
    // VM memory is kernel memory: reading it as user memory fails.
    let (ret, _) = probe(&mut host, &mut ctx, PROBE_READ_USER, 4, &from_ctx(0)).unwrap();
    assert_eq!(ret, -ktap_vm::EFAULT);
    assert!(host.log.is_empty(), "{:?}", host.log);
}

#[test]
fn probe_read_of_other_memory_goes_to_the_host() {
    let mut host = Recorder::new(&[]);
    let src = ld64(R3, FOREIGN);
    let (ret, bytes) = probe(&mut host, &mut [], PROBE_READ_USER, 4, &src).unwrap();
    assert_eq!((ret, &bytes[..5]), (0, &b"fore\xff"[..]));
    let (ret, bytes) = probe(&mut host, &mut [], PROBE_READ_USER_STR, 16, &src).unwrap();
    assert_eq!((ret, &bytes[..9]), (8, &b"foreign\0\xff"[..]));
    let (ret, bytes) = probe(&mut host, &mut [], PROBE_READ, 16, &src).unwrap();
    assert_eq!((ret, bytes), (-ktap_vm::EFAULT, [0; 16]));
    assert!(host.log[0].starts_with("probe_read User 0x7fff00001000 4"));
    // MemHost has no foreign memory at all.
    let mut mem = MemHost::new(&[], Endian::Little);
    let (ret, bytes) = probe(&mut mem, &mut [], PROBE_READ_KERNEL_STR, 16, &src).unwrap();
    assert_eq!((ret, bytes), (-ktap_vm::EFAULT, [0; 16]));
}

#[test]
fn probe_read_checks_its_destination() {
    let mut host = MemHost::new(&[], Endian::Little);
    let f = fault(probe(
        &mut host,
        &mut [],
        PROBE_READ,
        17,
        &ld64(R3, FOREIGN),
    ));
    assert_eq!(
        f.message,
        "invalid indirect access to stack R1 off=-16 size=17"
    );
    // Zero bytes is a valid request.
    let (ret, bytes) = probe(&mut host, &mut [], PROBE_READ, 0, &ld64(R3, FOREIGN)).unwrap();
    assert_eq!((ret, bytes), (-ktap_vm::EFAULT, [0xff; 16]));
}

/// A per-CPU kernel variable reads as zeros in the VM (a process is never in interrupt
/// context), and the memory `bpf_this_cpu_ptr()` gives cannot be written.
#[test]
fn this_cpu_ptr_gives_read_only_zeros() {
    let read = asm(&[
        &Insn::ld_ksym(R1, 8435),
        &[
            Insn::call(THIS_CPU_PTR),
            Insn::ldx(BPF_W, R0, R0, 0),
            Insn::exit(),
        ],
    ]);
    assert_eq!(exec(&read), Ok(0));
    let write = asm(&[
        &Insn::ld_ksym(R1, 8435),
        &[
            Insn::call(THIS_CPU_PTR),
            Insn::st(BPF_W, R0, 0, 1),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ],
    ]);
    assert!(fault(exec(&write)).message.contains("rdonly_mem"));
}
