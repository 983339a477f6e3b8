/* The timed call loops of the overhead benchmark, one shared library per kind of caller object. */
#ifndef BENCH_LOOPS_H
#define BENCH_LOOPS_H

/* Exported from a benchmark library (the project builds with -fvisibility=hidden). */
#define BENCH_EXPORT __attribute__((visibility("default")))

/*
 * Each loop makes COUNT calls of one libc function from the object it is compiled into, so
 * that the call goes through that object's own PLT slot: the slot the audit module binds for
 * that object. Each returns the number of calls that did not give the expected result (0 when
 * all is well), so that a loop whose calls misbehave is noticed, not timed.
 */

/* libbench_unselected.so, which the benchmark policy does not select. */

/* getppid(): a libc call outside viaudit's symbol table. */
BENCH_EXPORT long bench_unselected_getppid(long count);

/* strlen() of a short string: a libc call that stays in user space (a few ns). */
BENCH_EXPORT long bench_unselected_strlen(long count);

/* bind(-1, ...): a creation call, failing with EBADF; not rebound in an unselected object. */
BENCH_EXPORT long bench_unselected_bind(long count);

/* libbench_selected.so, which the benchmark policy selects. */

/* write(FD, "x", 1): an fd call, rebound; FD is an ordinary file such as /dev/null. */
BENCH_EXPORT long bench_selected_write(int fd, long count);

#endif
