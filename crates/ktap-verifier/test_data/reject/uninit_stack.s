; Linux 6.3+ lets a privileged program read stack it never wrote; ktap refuses, as earlier
; kernels do: such a read is a bug in the program.
; kernel-accepts: yes
; error: invalid read from stack R10 off=-8 size=8
r0 = *(u64 *)(r10 -8)
exit
