; A 32-bit test does not settle a pointer.
; error: R0 invalid mem access 'map_value_or_null'
; map 0: hash key=8 value=8
*(u64 *)(r10 -8) = 0
r1 = map[0] ll
r2 = r10
r2 += -8
call bpf_map_lookup_elem#1
if w0 == 0x0 goto pc+1
r0 = *(u64 *)(r0 +0)
r0 = 0
exit
