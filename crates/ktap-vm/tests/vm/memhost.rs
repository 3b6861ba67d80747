//! [`MemHost`]'s map rules, called directly: capacity, update flags, deletes, arrays, iteration
//! order, clear and count.

use super::*;
use ktap_bpf::helpers::{BPF_ANY, BPF_EXIST, BPF_NOEXIST};
use ktap_vm::{E2BIG, EEXIST, EINVAL, ENOENT};

fn k(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

#[test]
fn a_full_hash_map_refuses_new_keys_but_replaces_old_ones() {
    let maps = [map(MapKind::Hash, 8, 8, 2)];
    let mut h = MemHost::new(&maps, Endian::Little);
    assert_eq!(h.map_update(0, &k(1), &k(10), BPF_ANY), 0);
    assert_eq!(h.map_update(0, &k(2), &k(20), BPF_NOEXIST), 0);
    assert_eq!(h.map_update(0, &k(3), &k(30), BPF_ANY), -E2BIG);
    assert_eq!(h.map_update(0, &k(2), &k(21), BPF_ANY), 0);
    assert_eq!(h.map_update(0, &k(1), &k(11), BPF_EXIST), 0);
    assert_eq!(h.map_count(0), 2);
    assert_eq!(h.get(0, &k(1)), Some(k(11).to_vec()));
    assert_eq!(h.get(0, &k(2)), Some(k(21).to_vec()));
    assert_eq!(h.get(0, &k(3)), None);
    // Deleting makes room again.
    assert_eq!(h.map_delete(0, &k(1)), 0);
    assert_eq!(h.map_update(0, &k(3), &k(30), BPF_ANY), 0);
}

#[test]
fn update_flags_and_deletes() {
    let maps = [map(MapKind::PercpuHash, 8, 8, 8)];
    let mut h = MemHost::new(&maps, Endian::Little);
    assert_eq!(h.map_update(0, &k(1), &k(10), BPF_EXIST), -ENOENT);
    assert_eq!(h.map_update(0, &k(1), &k(10), BPF_NOEXIST), 0);
    assert_eq!(h.map_update(0, &k(1), &k(11), BPF_NOEXIST), -EEXIST);
    assert_eq!(h.map_update(0, &k(1), &k(12), 4), -EINVAL);
    assert_eq!(h.get(0, &k(1)), Some(k(10).to_vec()));
    assert_eq!(h.map_delete(0, &k(1)), 0);
    assert_eq!(h.map_delete(0, &k(1)), -ENOENT);
    // Keys and values of the wrong size are refused, not truncated.
    assert_eq!(h.map_update(0, &[1, 2], &k(1), BPF_ANY), -EINVAL);
    assert_eq!(h.map_update(0, &k(1), &[1], BPF_ANY), -EINVAL);
    let mut v = [0u8; 8];
    assert!(!h.map_lookup(0, &k(1), &mut v));
    assert!(!h.map_lookup(9, &k(1), &mut v));
}

#[test]
fn arrays_exist_whole_and_zeroed() {
    for endian in [Endian::Little, Endian::Big] {
        let maps = [map(MapKind::Array, 4, 8, 3)];
        let mut h = MemHost::new(&maps, endian);
        let idx = |i: u32| match endian {
            Endian::Little => i.to_le_bytes(),
            Endian::Big => i.to_be_bytes(),
        };
        assert_eq!(h.get(0, &idx(2)), Some(vec![0; 8]));
        assert_eq!(h.get(0, &idx(3)), None);
        assert_eq!(h.map_update(0, &idx(2), &k(5), BPF_EXIST), 0);
        assert_eq!(h.map_update(0, &idx(1), &k(5), BPF_NOEXIST), -EEXIST);
        assert_eq!(h.map_update(0, &idx(3), &k(5), BPF_ANY), -E2BIG);
        assert_eq!(h.map_delete(0, &idx(2)), -EINVAL);
        assert_eq!(h.get(0, &idx(2)), Some(k(5).to_vec()));
        assert_eq!(h.map_count(0), 3);
        // Iteration goes in index order whatever the byte order of the keys.
        let mut keys = Vec::new();
        let mut next = [0u8; 4];
        let mut ret = h.map_next_key(0, None, &mut next);
        while ret == 0 {
            keys.push(next);
            let cur = next;
            ret = h.map_next_key(0, Some(&cur), &mut next);
        }
        assert_eq!(ret, -ENOENT);
        assert_eq!(keys, [idx(0), idx(1), idx(2)]);
        // A key past the end starts over.
        assert_eq!(h.map_next_key(0, Some(&idx(7)), &mut next), 0);
        assert_eq!(next, idx(0));
        assert_eq!(h.map_clear(0), 0);
        assert_eq!(h.get(0, &idx(2)), Some(vec![0; 8]));
    }
}

#[test]
fn hash_iteration_is_ordered_and_survives_deletes() {
    let maps = [map(MapKind::Hash, 8, 8, 8)];
    let mut h = MemHost::new(&maps, Endian::Little);
    for key in [5u64, 1, 3] {
        h.map_update(0, &k(key), &k(key), BPF_ANY);
    }
    let mut next = [0u8; 8];
    assert_eq!(h.map_next_key(0, None, &mut next), 0);
    assert_eq!(next, k(1));
    // Deleting the current key does not lose the place.
    h.map_delete(0, &k(1));
    assert_eq!(h.map_next_key(0, Some(&k(1)), &mut next), 0);
    assert_eq!(next, k(3));
    assert_eq!(h.map_next_key(0, Some(&k(5)), &mut next), -ENOENT);
    assert_eq!(h.map_clear(0), 0);
    assert_eq!(h.map_count(0), 0);
    assert_eq!(h.map_next_key(0, None, &mut next), -ENOENT);
}

#[test]
fn outputs_are_collected_in_order() {
    let maps = [map(MapKind::PerfEventArray, 4, 4, 0)];
    let mut h = MemHost::new(&maps, Endian::Little);
    assert_eq!(h.output(0, u64::from(u32::MAX), b"one"), 0);
    assert_eq!(h.output(0, 0, b"two"), 0);
    assert_eq!(h.outputs, [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(h.map_update(0, &[0; 4], &[0; 4], BPF_ANY), -EINVAL);
    assert_eq!(h.map_count(0), 0);
}
