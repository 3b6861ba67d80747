; A perf-event program reads registers and the sample period (x86_64 layout).
; type: perf_event
r2 = *(u64 *)(r1 +128)
r3 = *(u64 *)(r1 +168)
r4 = *(u32 *)(r1 +176)
r0 = r2
exit
