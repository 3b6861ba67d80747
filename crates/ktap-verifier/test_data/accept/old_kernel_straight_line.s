; Without loops, a program is fine on kernels before 5.3 too.
; kernel: 4.19
r0 = *(u32 *)(r1 +8)
if r0 > 0x5 goto pc+1
r0 = 0
exit
