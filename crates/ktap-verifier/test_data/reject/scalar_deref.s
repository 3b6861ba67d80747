; error: R1 invalid mem access 'scalar'
; at: 1
r1 = 0
r0 = *(u64 *)(r1 +0)
exit
