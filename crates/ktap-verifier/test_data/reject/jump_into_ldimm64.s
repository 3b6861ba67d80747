; error: jump into the middle of ldimm64 insn 1
if r1 == 0x0 goto pc+1
r2 = 0x1122334455667788 ll
r0 = 0
exit
