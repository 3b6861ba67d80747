; Atomic operations on the stack and on a map value.
; map 0: array key=4 value=8
*(u64 *)(r10 -8) = 0
r2 = 5
r2 = atomic64_fetch_add((u64 *)(r10 -8), r2)
*(u32 *)(r10 -12) = 0
r1 = map[0] ll
r2 = r10
r2 += -12
call bpf_map_lookup_elem#1
if r0 == 0x0 goto pc+3
r1 = 1
r1 = atomic64_xchg((u64 *)(r0 +0), r1)
lock *(u32 *)(r0 +4) += r1
r0 = 0
exit
