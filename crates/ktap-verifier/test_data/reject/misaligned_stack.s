; error: misaligned stack access off 0+0+-6 size 4
*(u32 *)(r10 -6) = 0
r0 = 0
exit
