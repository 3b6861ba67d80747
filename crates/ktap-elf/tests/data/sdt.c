/* The SDT fixtures' source: two probes with semaphores, built for every target by
 * gen.sh. Arguments live in registers, in memory and as constants, so each architecture's
 * operand syntax shows up in the notes. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

__extension__ unsigned short demo_three_semaphore __attribute__((unused))
    __attribute__((section(".probes")));
__extension__ unsigned short demo_gated_semaphore __attribute__((unused))
    __attribute__((section(".probes")));

volatile long sink;

__attribute__((noinline)) long work(int a, long b, long *p)
{
	STAP_PROBE3(demo, three, a, b, p[2]);
	if (demo_gated_semaphore)
		STAP_PROBE2(demo, gated, b, 42);
	return a + b;
}

void _start(void)
{
	long x[4] = { 1, 2, 3, 4 };
	sink = work((int)sink, sink + 1, x);
	for (;;)
		;
}
