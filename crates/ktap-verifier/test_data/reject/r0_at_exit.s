; error: R0 !read_ok
; at: 0
exit
