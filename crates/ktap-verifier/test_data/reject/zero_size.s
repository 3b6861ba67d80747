; error: R2 invalid zero-sized read: u64=[0,0]
r1 = r10
r1 += -16
r2 = 0
call bpf_get_current_comm#16
r0 = 0
exit
