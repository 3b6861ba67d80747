; error: BPF_ALU uses reserved fields
r0 = 0
raw code=0x07 dst=0 src=3 off=0 imm=1
exit
