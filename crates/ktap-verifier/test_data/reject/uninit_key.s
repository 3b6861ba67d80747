; kernel-accepts: yes
; error: invalid indirect read from stack R2 off -8+4 size 8
; map 0: hash key=8 value=8
*(u32 *)(r10 -8) = 0
r1 = map[0] ll
r2 = r10
r2 += -8
call bpf_map_lookup_elem#1
r0 = 0
exit
