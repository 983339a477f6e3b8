/* sem_check: runs one socket-semantics subtest over one address, so a script can run each in a fresh process. */
#include "sem.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every subtest must finish within this; the script's own limit is longer. */
#define SEM_ALARM_SECONDS 10

struct sem_test {
	const char *name;
	const char *what;
	void (*run)(const struct sem_ctx *ctx);
};

static const struct sem_test sem_tests[] = {
#define SEM_ENTRY(name, what) { #name, what, sem_test_##name },
	SEM_TESTS(SEM_ENTRY)
#undef SEM_ENTRY
};

static void sem_usage(FILE *out)
{
	fputs("usage: sem_check LIST                       print the subtest names\n"
	      "       sem_check DESCRIBE                   print each name and what it proves\n"
	      "       sem_check PROBE ADDRESS              exit 0 if ADDRESS can be listened on, else 77\n"
	      "       sem_check RUN NAME ADDRESS [MODE]    run subtest NAME over ADDRESS\n"
	      "\n"
	      "ADDRESS is an IPv4 or IPv6 literal (4 and 6 mean 127.0.0.1 and ::1). MODE says how\n"
	      "the suite runs the program: kernel (no viaudit, the default), tcp or shm (under\n"
	      "viaudit with that route); only assertions about what viaudit may refuse depend on it.\n"
	      "Exit status: 0 passed, 1 failed, 2 bad usage, 77 skipped (the reason is printed).\n"
	      "SEM_KEEP_GOING=1 reports every result that differs from Linux's instead of stopping\n"
	      "at the first (a debugging aid: later differences may follow from earlier ones).\n",
	      out);
}

static const struct sem_test *sem_find(const char *name)
{
	for (size_t i = 0; i < sizeof(sem_tests) / sizeof(sem_tests[0]); i++)
		if (strcmp(sem_tests[i].name, name) == 0)
			return &sem_tests[i];
	return NULL;
}

/* Fills ctx's address from text; returns 0, or -EINVAL when it is no IP literal. */
static int sem_parse_address(const char *text, struct sem_ctx *ctx)
{
	memset(&ctx->addr, 0, sizeof(ctx->addr));
	if (strcmp(text, "4") == 0)
		text = "127.0.0.1";
	else if (strcmp(text, "6") == 0)
		text = "::1";
	ctx->address_text = text;
	struct sockaddr_in *in = (struct sockaddr_in *)&ctx->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ctx->addr;
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		ctx->family = AF_INET;
		ctx->addr_len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		ctx->family = AF_INET6;
		ctx->addr_len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

static int sem_parse_mode(const char *text, enum sem_mode *mode)
{
	if (strcmp(text, "kernel") == 0)
		*mode = SEM_MODE_KERNEL;
	else if (strcmp(text, "tcp") == 0)
		*mode = SEM_MODE_TCP;
	else if (strcmp(text, "shm") == 0)
		*mode = SEM_MODE_SHM;
	else
		return -EINVAL;
	return 0;
}

static void sem_write_text(const char *text)
{
	ssize_t r = write(STDERR_FILENO, text, strlen(text));
	(void)r;
}

/* A subtest that hangs fails with its name rather than being killed from outside. */
static void sem_on_alarm(int sig)
{
	(void)sig;
	sem_write_text("FAIL ");
	sem_write_text(sem_current ? sem_current->name : "?");
	sem_write_text(" ");
	sem_write_text(sem_current ? sem_current->address_text : "?");
	sem_write_text(": did not finish within 10 s (a call blocked that should not have)\n");
	_exit(1);
}

/* A SIGPIPE that no subtest asked for fails loudly instead of killing the process mutely. */
static void sem_on_unexpected_sigpipe(int sig)
{
	(void)sig;
	sem_write_text("FAIL ");
	sem_write_text(sem_current ? sem_current->name : "?");
	sem_write_text(": unexpected SIGPIPE\n");
	_exit(1);
}

/* Whether a listener can be opened on the address: a host without IPv6 cannot. */
static int sem_probe(struct sem_ctx *ctx)
{
	int fd = socket(ctx->family, SOCK_STREAM, 0);
	if (fd < 0) {
		printf("cannot make a %s socket: %s\n", ctx->family == AF_INET ? "IPv4" : "IPv6",
		       sem_errno_name(errno));
		return 77;
	}
	if (bind(fd, (struct sockaddr *)&ctx->addr, ctx->addr_len) < 0 || listen(fd, 1) < 0) {
		printf("cannot listen on %s: %s\n", ctx->address_text, sem_errno_name(errno));
		close(fd);
		return 77;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static struct sem_ctx ctx;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "LIST") == 0) {
		for (size_t i = 0; i < sizeof(sem_tests) / sizeof(sem_tests[0]); i++)
			printf("%s\n", sem_tests[i].name);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "DESCRIBE") == 0) {
		for (size_t i = 0; i < sizeof(sem_tests) / sizeof(sem_tests[0]); i++)
			printf("%-24s %s\n", sem_tests[i].name, sem_tests[i].what);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], SEM_EXEC_CHECK) == 0)
		return sem_exec_check_main(argc - 1, argv + 1);
	if (argc == 3 && strcmp(argv[1], "PROBE") == 0) {
		if (sem_parse_address(argv[2], &ctx) < 0) {
			fprintf(stderr, "sem_check: %s is not an IP address\n", argv[2]);
			return 2;
		}
		return sem_probe(&ctx);
	}
	if ((argc != 4 && argc != 5) || strcmp(argv[1], "RUN") != 0) {
		sem_usage(stderr);
		return 2;
	}
	const struct sem_test *test = sem_find(argv[2]);
	if (test == NULL) {
		fprintf(stderr, "sem_check: no subtest named %s (see sem_check LIST)\n", argv[2]);
		return 2;
	}
	if (sem_parse_address(argv[3], &ctx) < 0) {
		fprintf(stderr, "sem_check: %s is not an IP address\n", argv[3]);
		return 2;
	}
	ctx.mode = SEM_MODE_KERNEL;
	if (argc == 5 && sem_parse_mode(argv[4], &ctx.mode) < 0) {
		fprintf(stderr, "sem_check: mode %s is not kernel, tcp or shm\n", argv[4]);
		return 2;
	}
	ctx.name = test->name;
	sem_current = &ctx;

	signal(SIGALRM, sem_on_alarm);
	signal(SIGPIPE, sem_on_unexpected_sigpipe);
	alarm(SEM_ALARM_SECONDS);
	test->run(&ctx);
	if (sem_mismatched)
		return 1;
	printf("ok %s %s\n", ctx.name, ctx.address_text);
	return 0;
}
