; error: invalid stack off=-520 size=8
; at: 0
*(u64 *)(r10 -520) = r1
r0 = 0
exit
