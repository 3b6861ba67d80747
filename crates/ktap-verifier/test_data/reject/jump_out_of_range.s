; error: jump out of range from insn 0 to 41
; at: 0
if r1 == 0x0 goto pc+40
r0 = 0
exit
