; type: socket_filter
; error: program of this type cannot use helper bpf_probe_read#4
*(u64 *)(r10 -8) = 0
r1 = r10
r1 += -8
r2 = 8
r3 = 0
call bpf_probe_read#4
r0 = 0
exit
