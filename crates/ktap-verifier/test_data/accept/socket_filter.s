; A socket filter reads the packet length and keeps a word in cb[0].
; type: socket_filter
r2 = *(u32 *)(r1 +0)
*(u32 *)(r1 +48) = r2
r0 = *(u16 *)(r1 +16)
exit
