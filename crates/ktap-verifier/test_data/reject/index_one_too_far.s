; The check lets index 13 through, and 13 + 4 bytes is past the 16-byte value.
; error: invalid access to map value, value_size=16 off=13 size=4
; map 0: array key=4 value=16
*(u32 *)(r10 -4) = 0
r1 = map[0] ll
r2 = r10
r2 += -4
call bpf_map_lookup_elem#1
if r0 == 0x0 goto pc+4
r1 = *(u32 *)(r0 +0)
if r1 > 0xd goto pc+2
r0 += r1
r0 = *(u32 *)(r0 +0)
r0 = 0
exit
