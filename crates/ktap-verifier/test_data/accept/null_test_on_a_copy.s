; Testing a copy of a lookup's result settles the original too.
; map 0: array key=4 value=16
*(u32 *)(r10 -4) = 0
r1 = map[0] ll
r2 = r10
r2 += -4
call bpf_map_lookup_elem#1
r6 = r0
if r6 != 0x0 goto pc+2
r0 = 0
exit
r0 = *(u64 *)(r0 +8)
exit
