; A record to the perf buffer: context, output map, current CPU, stack buffer, size.
; map 0: perf_event_array
*(u64 *)(r10 -16) = 7
*(u64 *)(r10 -8) = 0
r2 = map[0] ll
r3 = 0xffffffff ll
r4 = r10
r4 += -16
r5 = 16
call bpf_perf_event_output#25
r0 = 0
exit
