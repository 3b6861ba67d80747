; Nine functions, each calling the next: one frame more than the kernel allows.
; error: the call stack of 9 frames is too deep
call pc+2
r0 = 0
exit
call pc+1
exit
call pc+1
exit
call pc+1
exit
call pc+1
exit
call pc+1
exit
call pc+1
exit
call pc+1
exit
call pc+1
exit
r0 = 0
exit
