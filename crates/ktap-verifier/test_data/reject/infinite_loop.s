; error: infinite loop detected at insn 1: the loop closed by the back-edge from insn 1 to 1
r0 = 0
if r0 == 0x0 goto pc-1
exit
