; A loop on a number nothing is known about never provably ends.
; kernel-skip: the kernel narrows the counter by one each round and takes half a minute to give up
; error: infinite loop detected at insn 2
call bpf_ktime_get_ns#5
r1 = r0
r1 += -1
if r1 != 0x0 goto pc-2
r0 = 0
exit
