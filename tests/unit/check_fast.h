/* Check, with assertions that cost nothing when they pass.
 *
 * Check's ck_assert_msg() calls _mark_point() on every passing assertion, and that writes a
 * location record to Check's message file: one write(2) per assertion. The suites assert
 * inside loops that run millions of times (every record of a segment model, every step of an
 * aggregation model), so that write dominated their run time, ten times over under valgrind.
 * The mark point only tells, in fork mode, where a test that crashed got to; the suites run
 * with CK_FORK=no (Makefile.am), where a crash stops the run with its own backtrace anyway.
 *
 * Every typed assertion (ck_assert_int_eq, ck_assert_str_eq, ck_assert_ptr_nonnull, ...)
 * expands to ck_assert_msg(), so redefining that one macro keeps their failure messages and
 * drops the per-pass write. Include this instead of <check.h>. */
#ifndef SL_CHECK_FAST_H
#define SL_CHECK_FAST_H

#include <check.h>

#undef ck_assert_msg
#define ck_assert_msg(expr, ...)                                                              \
    ((expr) ? (void)0                                                                         \
            : _ck_assert_failed(__FILE__, __LINE__, "Assertion '" #expr "' failed",           \
                                ##__VA_ARGS__))

#endif
