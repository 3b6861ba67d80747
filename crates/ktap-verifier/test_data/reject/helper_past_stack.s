; error: invalid write to stack R1 off=-16 size=32
r1 = r10
r1 += -16
r2 = 32
call bpf_get_current_comm#16
r0 = 0
exit
