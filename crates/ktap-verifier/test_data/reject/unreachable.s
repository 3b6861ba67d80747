; error: unreachable insn 2
r0 = 0
goto pc+1
r0 = 1
exit
