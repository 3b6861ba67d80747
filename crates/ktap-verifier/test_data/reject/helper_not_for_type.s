; type: socket_filter
; error: program of this type cannot use helper bpf_get_current_comm#16
r1 = r10
r1 += -16
r2 = 16
call bpf_get_current_comm#16
r0 = 0
exit
