; error: cannot pass map_type 4 into func bpf_map_lookup_elem#1
; map 0: perf_event_array
*(u32 *)(r10 -4) = 0
r1 = map[0] ll
r2 = r10
r2 += -4
call bpf_map_lookup_elem#1
r0 = 0
exit
