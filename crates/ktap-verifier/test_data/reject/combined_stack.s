; Each frame takes its depth rounded up to 32 bytes: 320 + 320 is more than 512.
; kernel-accepts: Linux 6.13+ gives tracing programs on x86_64 a private stack per function; other kernels refuse
; error: combined stack size of 2 calls is 640. Too large
*(u64 *)(r10 -296) = 0
call pc+2
r0 = 0
exit
*(u64 *)(r10 -296) = 0
r0 = 0
exit
