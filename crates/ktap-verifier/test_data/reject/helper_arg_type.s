; error: R1 type=scalar expected=fp
r1 = 0
r2 = 16
call bpf_get_current_comm#16
r0 = 0
exit
