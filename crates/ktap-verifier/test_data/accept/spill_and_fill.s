; The context pointer survives a trip through the stack.
*(u64 *)(r10 -8) = r1
r1 = 0
r1 = *(u64 *)(r10 -8)
r0 = *(u32 *)(r1 +8)
exit
