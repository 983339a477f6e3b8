/* Median and mean for the benchmark programs. */
#include <stdlib.h>

#include "bench_stats.h"

static int bench_stats_compare(const void *left, const void *right)
{
	double a = *(const double *)left, b = *(const double *)right;

	return (a > b) - (a < b);
}

double bench_stats_median(double *values, size_t count)
{
	qsort(values, count, sizeof(*values), bench_stats_compare);
	if (count % 2 == 1)
		return values[count / 2];
	return (values[count / 2 - 1] + values[count / 2]) / 2;
}

double bench_stats_mean(const double *values, size_t count)
{
	double sum = 0;

	for (size_t i = 0; i < count; i++)
		sum += values[i];
	return sum / (double)count;
}
