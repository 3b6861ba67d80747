; error: invalid stack off=0 size=4
*(u32 *)(r10 +0) = 0
r0 = 0
exit
