; kernel: 6.1
; error: needs cpu v4 instructions
r0 = 1
r0 = (s8)r0
exit
