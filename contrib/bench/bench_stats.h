/* Robust statistics for the benchmark programs: a median that does not keep the input order. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>

/* Sorts VALUES[0..COUNT) in place and returns their median; COUNT must be at least 1. */
double bench_stats_median(double *values, size_t count);

/* Returns the mean of VALUES[0..COUNT); COUNT must be at least 1. */
double bench_stats_mean(const double *values, size_t count);

#endif
