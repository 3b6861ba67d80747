; The shape ktap compiles `t[key] += 1` to: look up, add in place, or insert.
; type: tracepoint
; map 0: hash key=8 value=8
r6 = *(u64 *)(r1 +16)
*(u64 *)(r10 -8) = r6
r1 = map[0] ll
r2 = r10
r2 += -8
call bpf_map_lookup_elem#1
if r0 == 0x0 goto pc+3
r1 = 1
lock *(u64 *)(r0 +0) += r1
goto pc+9
*(u64 *)(r10 -16) = 1
r1 = map[0] ll
r2 = r10
r2 += -8
r3 = r10
r3 += -16
r4 = 1
call bpf_map_update_elem#2
r0 = 0
exit
