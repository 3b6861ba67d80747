; error: R1 bitwise operator &= on pointer prohibited
r1 = r10
r1 &= -8
r0 = 0
exit
