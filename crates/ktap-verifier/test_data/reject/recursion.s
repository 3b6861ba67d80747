; error: back-edge from insn 3 to 3: a recursive call
call pc+2
r0 = 0
exit
call pc-1
exit
