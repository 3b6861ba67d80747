; A string from user memory into a zeroed stack buffer.
*(u64 *)(r10 -16) = 0
*(u64 *)(r10 -8) = 0
r3 = *(u64 *)(r1 +24)
r1 = r10
r1 += -16
r2 = 16
call bpf_probe_read_user_str#114
r0 = 0
exit
