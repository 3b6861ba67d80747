; error: dereference of modified ctx ptr R1 off=8 disallowed
r1 += 8
r0 = *(u32 *)(r1 +0)
exit
