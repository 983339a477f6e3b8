/* What `viaudit bench` prints: the table, the ratios, the targets, the JSON and the gnuplot plot. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "bench.h"

extern char **environ;

/* A target of issue 4 item 7, as a ratio of two figures of the same run. */
struct bench_target {
	const char *text;
	const char *unit;        /* what the ratio is relative to, e.g. "x TCP" */
	double value;            /* NAN when a figure is missing */
	double goal;
	bool at_least;           /* met when value >= goal; else when value <= goal */
	enum bench_case subject; /* the viaudit case the target is about */
};

enum { BENCH_TARGET_COUNT = 5 };

/* The index of a measure in bench_measures. */
static int bench_measure_index(enum bench_mode mode, size_t size)
{
	for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
		if (bench_measures[m].mode == mode && bench_measures[m].size == size)
			return m;
	}
	return 0; /* not reached: every caller names a measure of the table */
}

/* The p50 round trip of a ping-pong in ns, or NAN. */
static double bench_p50(const struct bench_report *report, size_t size, enum bench_case which)
{
	const struct bench_result *r =
		&report->results[bench_measure_index(BENCH_PINGPONG, size)][which];
	return r->measured ? (double)r->p50_ns : NAN;
}

static double bench_messages_per_second(const struct bench_result *r)
{
	return r->measured ? (double)r->messages * 1e9 / (double)r->elapsed_ns : NAN;
}

static double bench_megabytes_per_second(const struct bench_result *r)
{
	return r->measured ? (double)r->bytes * 1e3 / (double)r->elapsed_ns : NAN;
}

static const struct bench_result *bench_stream(const struct bench_report *report, size_t size,
					       enum bench_case which)
{
	return &report->results[bench_measure_index(BENCH_STREAM, size)][which];
}

/* The targets of issue 4 item 7 (the redis-benchmark ones are measured by contrib/bench/bench.sh). */
static void bench_compute_targets(const struct bench_report *report,
				  struct bench_target targets[BENCH_TARGET_COUNT])
{
	targets[0] = (struct bench_target){
		"64 B RTT p50 at least 50x better than TCP loopback", "x TCP",
		bench_p50(report, 64, BENCH_CASE_TCP) / bench_p50(report, 64, BENCH_CASE_VIAUDIT),
		50, true, BENCH_CASE_VIAUDIT
	};
	targets[1] = (struct bench_target){
		"64 B RTT p50 within 1.5x of the raw spin ping-pong", "x raw",
		bench_p50(report, 64, BENCH_CASE_VIAUDIT) / bench_p50(report, 64, BENCH_CASE_RAW),
		1.5, false, BENCH_CASE_VIAUDIT
	};
	targets[2] = (struct bench_target){
		"64 KiB streaming at least 3x TCP (MB/s)", "x TCP",
		bench_megabytes_per_second(bench_stream(report, 64 * 1024, BENCH_CASE_VIAUDIT)) /
			bench_megabytes_per_second(bench_stream(report, 64 * 1024, BENCH_CASE_TCP)),
		3, true, BENCH_CASE_VIAUDIT
	};
	targets[3] = (struct bench_target){
		"64 B message rate at least 20x TCP", "x TCP",
		bench_messages_per_second(bench_stream(report, 64, BENCH_CASE_VIAUDIT)) /
			bench_messages_per_second(bench_stream(report, 64, BENCH_CASE_TCP)),
		20, true, BENCH_CASE_VIAUDIT
	};
	targets[4] = (struct bench_target){
		"spin_us 0: 64 B RTT p50 no worse than AF_UNIX", "x AF_UNIX",
		bench_p50(report, 64, BENCH_CASE_SPIN0) / bench_p50(report, 64, BENCH_CASE_UNIX), 1,
		false, BENCH_CASE_SPIN0
	};
}

/* Whether a target is met: its figures exist, the case really ran over shm, the ratio holds. */
static bool bench_target_met(const struct bench_report *report, const struct bench_target *t)
{
	if (isnan(t->value) || report->carriers[t->subject] != BENCH_CARRIER_SHM)
		return false;
	return t->at_least ? t->value >= t->goal : t->value <= t->goal;
}

/* Why a target is not met when the figures alone cannot say, or "". */
static const char *bench_target_note(const struct bench_report *report,
				     const struct bench_target *t)
{
	if (isnan(t->value))
		return " (not measured)";
	switch (report->carriers[t->subject]) {
	case BENCH_CARRIER_SHM:
		return "";
	case BENCH_CARRIER_FALLBACK:
		return " (the connection fell back to tcp)";
	case BENCH_CARRIER_MIXED:
		return " (some connections fell back to tcp)";
	default:
		return " (not routed by viaudit)";
	}
}

static const char *bench_carrier_word(enum bench_carrier carrier)
{
	switch (carrier) {
	case BENCH_CARRIER_KERNEL:
		return "kernel";
	case BENCH_CARRIER_SHM:
		return "shm";
	case BENCH_CARRIER_FALLBACK:
		return "tcp fallback";
	case BENCH_CARRIER_MIXED:
		return "shm and tcp mixed";
	case BENCH_CARRIER_NOT_ROUTED:
		return "not routed";
	default:
		return "not measured";
	}
}

const char *bench_report_label(const struct bench_report *report, enum bench_case which)
{
	static char labels[BENCH_CASE_COUNT][64];
	switch (which) {
	case BENCH_CASE_TCP:
		return "kernel TCP loopback";
	case BENCH_CASE_UNIX:
		return "AF_UNIX stream";
	case BENCH_CASE_RAW:
		return "raw shm spin (floor)";
	default:
		break;
	}
	const char *spin = which == BENCH_CASE_SPIN0 ? ", spin_us 0" : "";
	if (report->carriers[which] == BENCH_CARRIER_SHM)
		snprintf(labels[which], sizeof(labels[which]), "viaudit shm%s", spin);
	else
		snprintf(labels[which], sizeof(labels[which]), "viaudit%s (%s)", spin,
			 bench_carrier_word(report->carriers[which]));
	return labels[which];
}

/* Formats nanoseconds as microseconds with three significant digits, or "-". */
static const char *bench_format_us(char *buf, size_t size, double ns)
{
	double us = ns / 1000;
	if (isnan(ns))
		snprintf(buf, size, "-");
	else if (us < 10)
		snprintf(buf, size, "%.2f us", us);
	else if (us < 100)
		snprintf(buf, size, "%.1f us", us);
	else
		snprintf(buf, size, "%.0f us", us);
	return buf;
}

/* Formats a count per second with a unit prefix, or "-". */
static const char *bench_format_rate(char *buf, size_t size, double rate)
{
	if (isnan(rate))
		snprintf(buf, size, "-");
	else if (rate >= 1e6)
		snprintf(buf, size, "%.2f M", rate / 1e6);
	else if (rate >= 1e3)
		snprintf(buf, size, "%.1f k", rate / 1e3);
	else
		snprintf(buf, size, "%.0f", rate);
	return buf;
}

static const char *bench_format_ratio(char *buf, size_t size, double ratio)
{
	if (isnan(ratio) || isinf(ratio))
		snprintf(buf, size, "-");
	else if (ratio < 10)
		snprintf(buf, size, "%.2fx", ratio);
	else
		snprintf(buf, size, "%.1fx", ratio);
	return buf;
}

static const char *bench_format_size(char *buf, size_t size, size_t bytes)
{
	if (bytes >= 1024 && bytes % 1024 == 0)
		snprintf(buf, size, "%zu KiB", bytes / 1024);
	else
		snprintf(buf, size, "%zu B", bytes);
	return buf;
}

void bench_report_print_table(FILE *out, const struct bench_report *report)
{
	char a[32], b[32], c[32], d[32];
	fprintf(out, "viaudit bench: %ld CPUs, %.2f s per measure, load average %s before, %s after\n",
		report->cpus, report->seconds, report->load_before, report->load_after);
	if (report->busy_cpus >= 0)
		fprintf(out, "other work kept %.2f of %ld CPUs busy just before the run\n",
			report->busy_cpus, report->cpus);
	if (report->busy_cpus > 0.3)
		fputs("warning: the spinning cases (raw, viaudit shm) need a CPU each; on a busy\n"
		      "machine they may share one, and then their round trips are time slices\n",
		      out);
	fputs("x TCP: how many times better than kernel TCP loopback (round trip: TCP's p50 over\n"
	      "this p50; streaming: this rate over TCP's)\n\n",
	      out);
	fprintf(out, "%-22s %-36s %11s %11s %9s\n", "ping-pong round trip", "case", "p50", "p99",
		"x TCP");
	for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
		if (bench_measures[m].mode != BENCH_PINGPONG)
			continue;
		double tcp = bench_p50(report, bench_measures[m].size, BENCH_CASE_TCP);
		for (int which = 0; which < BENCH_CASE_COUNT; which++) {
			const struct bench_result *r = &report->results[m][which];
			double p50 = r->measured ? (double)r->p50_ns : NAN;
			double p99 = r->measured ? (double)r->p99_ns : NAN;
			fprintf(out, "%-22s %-36s %11s %11s %9s\n",
				bench_format_size(a, sizeof(a), bench_measures[m].size),
				bench_report_label(report, which),
				bench_format_us(b, sizeof(b), p50), bench_format_us(c, sizeof(c), p99),
				bench_format_ratio(d, sizeof(d), tcp / p50));
		}
	}
	fprintf(out, "\n%-22s %-36s %11s %11s %9s\n", "streaming", "case", "messages/s", "MB/s",
		"x TCP");
	for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
		if (bench_measures[m].mode != BENCH_STREAM)
			continue;
		double tcp = bench_megabytes_per_second(&report->results[m][BENCH_CASE_TCP]);
		for (int which = 0; which < BENCH_CASE_COUNT; which++) {
			if (which == BENCH_CASE_RAW)
				continue; /* the floor is a ping-pong only */
			const struct bench_result *r = &report->results[m][which];
			double mbps = bench_megabytes_per_second(r);
			char size[32], label[48];
			snprintf(label, sizeof(label), "%s messages",
				 bench_format_size(size, sizeof(size), bench_measures[m].size));
			fprintf(out, "%-22s %-36s %11s %11s %9s\n", label,
				bench_report_label(report, which),
				bench_format_rate(a, sizeof(a), bench_messages_per_second(r)),
				isnan(mbps) ? "-" : (snprintf(b, sizeof(b), "%.1f", mbps), b),
				bench_format_ratio(c, sizeof(c), mbps / tcp));
		}
	}

	for (int which = BENCH_CASE_VIAUDIT; which <= BENCH_CASE_SPIN0; which++) {
		if (report->carriers[which] == BENCH_CARRIER_FALLBACK ||
		    report->carriers[which] == BENCH_CARRIER_MIXED)
			fprintf(out, "\n%s: the conns log says transport=%s", bench_report_label(report, which),
				report->carrier_reasons[which]);
	}
	struct bench_target targets[BENCH_TARGET_COUNT];
	bench_compute_targets(report, targets);
	fputs("\n\ntargets (issue 4 item 7), viaudit against the other cases of this run:\n", out);
	for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
		const struct bench_target *t = &targets[i];
		char value[48];
		if (isnan(t->value))
			snprintf(value, sizeof(value), "-");
		else
			snprintf(value, sizeof(value), "%.2f%s", t->value, t->unit);
		fprintf(out, "  %-52s %14s  %s%s\n", t->text, value,
			bench_target_met(report, t) ? "met" : "not met",
			bench_target_note(report, t));
	}
	fputs("  redis-benchmark GET 5x TCP with -c 1, 2x with -c 50: measured by contrib/bench/bench.sh\n",
	      out);
}

/* Prints `text` as a JSON string. */
static void bench_json_string(FILE *out, const char *text)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Prints a number, or null for NAN (JSON has no NaN). */
static void bench_json_number(FILE *out, double value)
{
	if (isnan(value) || isinf(value))
		fputs("null", out);
	else
		fprintf(out, "%.6g", value);
}

void bench_report_print_json(FILE *out, const struct bench_report *report)
{
	fprintf(out, "{\n  \"cpus\": %ld,\n  \"seconds_per_measure\": %.3f,\n", report->cpus,
		report->seconds);
	fputs("  \"busy_cpus_before\": ", out);
	bench_json_number(out, report->busy_cpus < 0 ? NAN : report->busy_cpus);
	fputs(",\n  \"load_before\": ", out);
	bench_json_string(out, report->load_before);
	fputs(",\n  \"load_after\": ", out);
	bench_json_string(out, report->load_after);
	fputs(",\n  \"cases\": [", out);
	static const char *const names[BENCH_CASE_COUNT] = { "tcp", "unix", "raw", "viaudit",
							      "viaudit_spin0" };
	for (int which = 0; which < BENCH_CASE_COUNT; which++) {
		fprintf(out, "%s\n    {\"case\": \"%s\", \"label\": ", which ? "," : "", names[which]);
		bench_json_string(out, bench_report_label(report, which));
		fputs(", \"transport\": ", out);
		bench_json_string(out, bench_carrier_word(report->carriers[which]));
		if (report->carrier_reasons[which][0]) {
			fputs(", \"conns\": ", out);
			bench_json_string(out, report->carrier_reasons[which]);
		}
		fputc('}', out);
	}
	fputs("\n  ],\n  \"pingpong\": [", out);
	bool first = true;
	for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
		if (bench_measures[m].mode != BENCH_PINGPONG)
			continue;
		double tcp = bench_p50(report, bench_measures[m].size, BENCH_CASE_TCP);
		for (int which = 0; which < BENCH_CASE_COUNT; which++) {
			const struct bench_result *r = &report->results[m][which];
			if (!r->measured)
				continue;
			fprintf(out,
				"%s\n    {\"case\": \"%s\", \"size\": %zu, \"samples\": %" PRIu64
				", \"p50_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64 ", \"x_tcp\": ",
				first ? "" : ",", names[which], bench_measures[m].size, r->samples,
				r->p50_ns, r->p99_ns);
			bench_json_number(out, tcp / (double)r->p50_ns);
			fputc('}', out);
			first = false;
		}
	}
	fputs("\n  ],\n  \"stream\": [", out);
	first = true;
	for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
		if (bench_measures[m].mode != BENCH_STREAM)
			continue;
		double tcp = bench_megabytes_per_second(&report->results[m][BENCH_CASE_TCP]);
		for (int which = 0; which < BENCH_CASE_COUNT; which++) {
			const struct bench_result *r = &report->results[m][which];
			if (!r->measured)
				continue;
			fprintf(out,
				"%s\n    {\"case\": \"%s\", \"size\": %zu, \"messages\": %" PRIu64
				", \"bytes\": %" PRIu64 ", \"elapsed_ns\": %" PRIu64
				", \"messages_per_s\": ",
				first ? "" : ",", names[which], bench_measures[m].size, r->messages,
				r->bytes, r->elapsed_ns);
			bench_json_number(out, bench_messages_per_second(r));
			fputs(", \"mb_per_s\": ", out);
			bench_json_number(out, bench_megabytes_per_second(r));
			fputs(", \"x_tcp\": ", out);
			bench_json_number(out, bench_megabytes_per_second(r) / tcp);
			fputc('}', out);
			first = false;
		}
	}
	fputs("\n  ],\n  \"targets\": [", out);
	struct bench_target targets[BENCH_TARGET_COUNT];
	bench_compute_targets(report, targets);
	for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
		fprintf(out, "%s\n    {\"target\": ", i ? "," : "");
		bench_json_string(out, targets[i].text);
		fputs(", \"unit\": ", out);
		bench_json_string(out, targets[i].unit);
		fputs(", \"value\": ", out);
		bench_json_number(out, targets[i].value);
		fprintf(out, ", \"goal\": %g, \"at_least\": %s, \"met\": %s}", targets[i].goal,
			targets[i].at_least ? "true" : "false",
			bench_target_met(report, &targets[i]) ? "true" : "false");
	}
	fputs("\n  ]\n}\n", out);
}

/* Prints `text` as a gnuplot single-quoted string. */
static void bench_gnuplot_string(FILE *out, const char *text)
{
	fputc('\'', out);
	for (const char *p = text; *p; p++) {
		if (*p == '\'')
			fputc('\'', out);
		fputc(*p, out);
	}
	fputc('\'', out);
}

/* Writes the two data files the plot reads. Returns 0, or -errno. */
static int bench_write_plot_data(const struct bench_report *report, const char *rtt_path,
				 const char *stream_path)
{
	FILE *rtt = fopen(rtt_path, "w");
	if (!rtt)
		return -errno;
	FILE *stream = fopen(stream_path, "w");
	if (!stream) {
		int err = -errno;
		fclose(rtt);
		return err;
	}
	for (int which = 0; which < BENCH_CASE_COUNT; which++) {
		fprintf(rtt, "\"%s\"", bench_report_label(report, which));
		for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
			const struct bench_result *r = &report->results[m][which];
			if (bench_measures[m].mode != BENCH_PINGPONG)
				continue;
			if (r->measured)
				fprintf(rtt, " %.3f", (double)r->p50_ns / 1000);
			else
				fputs(" -", rtt);
		}
		fputc('\n', rtt);
		if (which == BENCH_CASE_RAW)
			continue;
		fprintf(stream, "\"%s\"", bench_report_label(report, which));
		for (int m = 0; m < BENCH_MEASURE_COUNT; m++) {
			const struct bench_result *r = &report->results[m][which];
			if (bench_measures[m].mode != BENCH_STREAM)
				continue;
			if (r->measured)
				fprintf(stream, " %.3f", bench_megabytes_per_second(r));
			else
				fputs(" -", stream);
		}
		fputc('\n', stream);
	}
	int err = fclose(stream) == 0 ? 0 : -errno;
	if (fclose(rtt) != 0 && err == 0)
		err = -errno;
	return err;
}

int bench_report_plot(const struct bench_report *report, const char *path, const char *workdir)
{
	char rtt_path[PATH_MAX + 32], stream_path[PATH_MAX + 32], script_path[PATH_MAX + 32];
	snprintf(rtt_path, sizeof(rtt_path), "%s/plot-rtt.dat", workdir);
	snprintf(stream_path, sizeof(stream_path), "%s/plot-stream.dat", workdir);
	snprintf(script_path, sizeof(script_path), "%s/plot.gp", workdir);
	int err = bench_write_plot_data(report, rtt_path, stream_path);
	if (err < 0)
		return err;
	FILE *script = fopen(script_path, "w");
	if (!script)
		return -errno;
	/* noenhanced: the labels' underscores (spin_us) are not subscripts. */
	fputs("set terminal pngcairo noenhanced size 1400,560 font ',10'\nset output ", script);
	bench_gnuplot_string(script, path);
	fprintf(script,
		"\nset datafile missing '-'\n"
		"set style data histogram\n"
		"set style histogram cluster gap 1\n"
		"set style fill solid 0.85 border -1\n"
		"set logscale y\n"
		"set grid ytics\n"
		"set key top left\n"
		"set xtics rotate by 20 right scale 0\n"
		"set bmargin 7\n"
		"set multiplot layout 1,2 title 'viaudit bench: %ld CPUs, %.2f s per measure, "
		"load %s'\n",
		report->cpus, report->seconds, report->load_before);
	/* Sub-0.1 us bars (the raw floor) must show: histogram bars grow from the axis bottom. */
	fputs("set title 'ping-pong round trip, p50 (lower is better)'\n"
	      "set ylabel 'microseconds (log scale)'\n"
	      "set yrange [0.01:*]\n"
	      "plot ",
	      script);
	bench_gnuplot_string(script, rtt_path);
	fputs(" using 2:xtic(1) title '64 B', '' using 3 title '1 KiB', '' using 4 title '64 KiB'\n"
	      "set autoscale y\n"
	      "set title 'streaming (higher is better)'\n"
	      "set ylabel 'MB/s (log scale)'\n"
	      "plot ",
	      script);
	bench_gnuplot_string(script, stream_path);
	fputs(" using 2:xtic(1) title '64 B messages', '' using 3 title '64 KiB messages'\n"
	      "unset multiplot\n",
	      script);
	if (fclose(script) != 0)
		return -errno;

	char *argv[] = { "gnuplot", script_path, NULL };
	pid_t pid;
	fflush(NULL);
	err = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
	if (err != 0)
		return -err;
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}
