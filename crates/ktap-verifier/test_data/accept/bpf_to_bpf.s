; A function that fills its caller's stack through a pointer, and returns a number.
r1 = r10
r1 += -16
call pc+4
r0 = *(u64 *)(r10 -16)
r1 = *(u64 *)(r10 -8)
r0 += r1
exit
*(u64 *)(r1 +0) = 1
*(u64 *)(r1 +8) = 2
r0 = 3
exit
