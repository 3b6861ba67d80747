; Kernels before 5.3 refuse every back edge.
; kernel: 5.2
; error: back-edge from insn 4 to 2
; at: 4
r0 = 0
r1 = 0
r1 += 1
r0 += r1
if r1 < 0xa goto pc-3
exit
