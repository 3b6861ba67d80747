//! Objects and kernel descriptions round-trip for every target and sample, and every kind of
//! bad file is refused with its own message.

mod common;

use ktap_bpf::kernel::Kernel;
use ktap_bpf::Target;
use ktap_object::{Error, KernelDesc, Object};

#[test]
fn every_sample_round_trips_for_every_target() {
    for name in Target::NAMES {
        let t = Target::by_name(name).unwrap();
        for (file, text) in common::samples() {
            let obj = common::compile(&file, &text, t);
            let bytes = obj.encode();
            assert_eq!(Object::target(&bytes), Ok(t));
            assert_eq!(
                Object::decode(&bytes, t).as_ref(),
                Ok(&obj),
                "{file} for {name}"
            );
            assert_eq!(bytes, obj.encode(), "{file}: encoding is deterministic");
        }
    }
}

#[test]
fn assumptions_are_the_tracepoints_read() {
    let t = Target::by_name("x86_64").unwrap();
    let obj = common::compile("t.kp", "trace syscalls:sys_enter_openat { print(arg2) }", t);
    let names: Vec<_> = obj.kernel.formats.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["sys_enter_openat"]);
    assert_eq!(obj.kernel.release, "6.1.0-fixture");
    assert_eq!(obj.kernel.check(&common::fixture_kernel(t)), Ok(()));

    let mut formats = common::fixture_kernel(t).formats().to_vec();
    let open = formats
        .iter_mut()
        .find(|f| f.name == "sys_enter_openat")
        .unwrap();
    let mut fields = open.fields.to_vec();
    fields
        .iter_mut()
        .find(|f| f.name == "filename")
        .unwrap()
        .offset = 32;
    open.fields = fields.into();
    let moved = KernelDesc::new(t, "other".into(), formats);
    let e = obj.kernel.check(&moved).unwrap_err();
    assert!(
        e.contains("field `filename` was at offset 24 (size 8), here at 32 (size 8)"),
        "{e}"
    );

    let empty = KernelDesc::new(t, "bare".into(), Vec::new());
    let e = obj.kernel.check(&empty).unwrap_err();
    assert!(e.contains("is not in the kernel description"), "{e}");
}

#[test]
fn descriptions_round_trip_and_answer_as_a_kernel() {
    let t = Target::by_name("mips").unwrap();
    let d = common::fixture_kernel(t);
    let back = KernelDesc::decode(&d.encode()).unwrap();
    assert_eq!(back, d);
    assert_eq!(back.tracepoints("sched", "*").len(), 2);
    assert!(back.tp_format("syscalls", "sys_enter_read").is_ok());
    assert!(back
        .all_tracepoints()
        .contains(&"raw_syscalls:sys_enter".to_string()));
    let e = Object::decode(&d.encode(), t).unwrap_err();
    assert_eq!(
        e.to_string(),
        "this is a ktap kernel description, not a compiled ktap object"
    );
}

#[test]
fn an_object_for_another_target_is_refused_before_reading_it() {
    let mips = Target::by_name("mips").unwrap();
    let x86 = Target::by_name("x86_64").unwrap();
    let bytes = common::compile("t.kp", "print(1)", mips).encode();
    let e = Object::decode(&bytes, x86).unwrap_err();
    assert!(matches!(e, Error::WrongTarget { .. }));
    assert_eq!(
        e.to_string(),
        "compiled ktap object for mips (big-endian, 32-bit), but this is x86_64 (little-endian, 64-bit)"
    );
}
