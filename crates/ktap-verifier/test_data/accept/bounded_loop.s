; A loop whose counter bounds it: the walk unrolls it and leaves it after 16 rounds.
; map 0: array key=4 value=64
*(u32 *)(r10 -4) = 0
r1 = map[0] ll
r2 = r10
r2 += -4
call bpf_map_lookup_elem#1
if r0 == 0x0 goto pc+8
r1 = 0
r2 = r0
r2 += r1
r3 = *(u32 *)(r2 +0)
r1 += 4
if r1 < 0x40 goto pc-5
r0 = r3
exit
r0 = 0
exit
