; A loop that ends, but after more rounds than the kernel walks.
; error: BPF program is too large. Processed 1000001 insn; the loop closed by the back-edge from insn 2 to 1
r1 = 0
r1 += 1
if r1 < 0x200000 goto pc-2
r0 = 0
exit
