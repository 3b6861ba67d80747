; error: back-edge from insn 6 to 3: a recursive call
call pc+2
r0 = 0
exit
call pc+1
exit
r0 = 1
call pc-4
exit
