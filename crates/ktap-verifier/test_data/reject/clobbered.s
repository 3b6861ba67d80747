; error: R1 !read_ok
; at: 1
call bpf_ktime_get_ns#5
r0 = r1
exit
