/* Declarations shared by the files of sem_check: the subtest list, the context and the checks. */
#ifndef SEM_H
#define SEM_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * Every subtest, once: X(name, what it proves). A subtest named NAME is the function
 * sem_test_NAME in one of the sem_*.c files; `sem_check LIST` prints the names in this order.
 */
#define SEM_TESTS(X)                                                                              \
	/* sem_io.c: moving bytes */                                                              \
	X(blocking_send_recv, "blocking recv waits for data; blocking send returns the full count") \
	X(nonblocking_empty_read, "non-blocking recv/read/readv/recvmsg on no data fail EAGAIN")  \
	X(nonblocking_full_write, "non-blocking send fails EAGAIN once the buffers are full")     \
	X(partial_read, "a read takes at most what is there, at once, from the front")          \
	X(partial_write, "a non-blocking write beyond the buffers returns a short, honest count") \
	X(msg_peek, "MSG_PEEK returns the data without consuming it")                            \
	X(msg_waitall, "MSG_WAITALL waits for every byte, or for EOF")                           \
	X(msg_dontwait, "MSG_DONTWAIT does not block a blocking socket, nor change its mode")     \
	X(readv_writev, "writev gathers and readv scatters in order; > IOV_MAX is EINVAL")     \
	X(zero_length, "reads and writes of 0 bytes: read/readv return at once, recv waits")    \
	X(sendmsg_recvmsg, "sendmsg/recvmsg with iovecs; no address nor control data on TCP")    \
	X(sendmsg_rights, "SCM_RIGHTS on TCP: the kernel drops it, viaudit may refuse it")      \
	X(fionread, "FIONREAD/SIOCINQ count the unread bytes; EINVAL on a listener")             \
	/* sem_close.c: ends of a connection */                                                   \
	X(eof_after_close, "after the peer's close: the data, then EOF again and again")        \
	X(shutdown_wr, "SHUT_WR: the peer reads EOF after the data and can still answer")       \
	X(shutdown_rd, "SHUT_RD: recv returns 0 at once, the peer is not told, writing works")  \
	X(shutdown_rdwr, "SHUT_RDWR: EOF both ways, EPIPE on the shut side, POLLHUP there")       \
	X(close_unread_read, "reset by a close with unread data: data, ECONNRESET once, then 0") \
	X(close_unread_write, "reset by a close with unread data: write ECONNRESET, then EPIPE")  \
	X(sigpipe_epipe, "writes after the peer's close fail EPIPE, one SIGPIPE per failed call") \
	X(msg_nosignal, "MSG_NOSIGNAL: EPIPE without SIGPIPE")                                   \
	X(so_error, "SO_ERROR is 0, then ECONNRESET once after a reset, which it clears")        \
	/* sem_fd.c: the descriptor */                                                            \
	X(names, "getsockname/getpeername/accept give the TCP addresses and ports")             \
	X(dup_shares_session, "dup, dup2, dup3 and F_DUPFD share the connection until the last close") \
	X(dup2_over_socket, "dup2 onto another connection's fd closes that connection")          \
	X(fcntl_nonblock, "O_NONBLOCK by fcntl and FIONBIO at run time, shared by dups")         \
	X(cloexec, "SOCK_CLOEXEC, accept4 SOCK_CLOEXEC, FD_CLOEXEC; exec closes them, leaking no fd") \
	X(accept4_nonblock, "accept4 SOCK_NONBLOCK; accept does not inherit a listener's O_NONBLOCK") \
	/* sem_poll.c: readiness without epoll */                                                 \
	X(poll, "poll: POLLIN only after data, POLLOUT until full, timeouts, POLLRDHUP, POLLNVAL") \
	X(ppoll, "ppoll: readiness, timeout, and its signal mask applied atomically")           \
	X(select, "select: read/write sets, timeout updated to what is left")                   \
	X(pselect, "pselect: readiness, timeout left unchanged, signal mask")                   \
	/* sem_epoll.c */                                                                         \
	X(epoll_level, "level-triggered EPOLLIN/EPOLLOUT, epoll_data, ADD/MOD/DEL errors")      \
	X(epoll_edge, "EPOLLET: one event per arrival, none again without new data")            \
	X(epoll_pwait, "epoll_pwait: readiness, timeout and its signal mask")                    \
	X(epoll_rdhup, "peer SHUT_WR gives EPOLLIN|EPOLLRDHUP, without EPOLLHUP")                \
	X(epoll_hup, "both directions shut give EPOLLHUP, even when no event was asked for")    \
	X(epoll_reset, "a reset gives EPOLLERR|EPOLLHUP, EPOLLERR cleared by reading the error") \
	X(epoll_oneshot, "EPOLLONESHOT: one event until re-armed with EPOLL_CTL_MOD")            \
	X(epoll_mixed, "one epoll set with a routed socket, its listener and a pipe")           \
	X(epoll_close_removes, "closing the only fd of a registered socket removes it from the set") \
	/* sem_bulk.c: volume and threads */                                                      \
	X(threads_one_socket, "one thread reads while another writes the same socket, 1 MiB each way") \
	X(sendfile, "sendfile from a file into the socket, with and without an offset pointer") \
	X(large_transfer, "64 MiB each way at once, with varied write and read sizes, byte for byte")

/* How the suite runs sem_check: the assertions that differ by mode ask for it. */
enum sem_mode {
	SEM_MODE_KERNEL, /* without viaudit */
	SEM_MODE_TCP,    /* under viaudit, route * tcp * tcp */
	SEM_MODE_SHM,    /* under viaudit, route * tcp * shm */
};

/* What one subtest run is about. */
struct sem_ctx {
	const char *name;
	const char *address_text;
	int family;                   /* AF_INET or AF_INET6 */
	struct sockaddr_storage addr; /* the address to listen on, port 0 */
	socklen_t addr_len;
	enum sem_mode mode;
};

/* A listener and one connection made through it; all three fds are routed under viaudit. */
struct sem_pair {
	int listener;
	int client; /* the connecting end */
	int server; /* the accepted end */
	struct sockaddr_storage listen_addr;
	socklen_t listen_len;
	struct sockaddr_storage accepted_addr; /* what accept wrote */
	socklen_t accepted_len;
};

/* The command the cloexec subtest execs itself with, and its entry point (sem_fd.c). */
#define SEM_EXEC_CHECK "EXEC-CHECK"
int sem_exec_check_main(int argc, char **argv);

#define SEM_DECLARE(name, what) void sem_test_##name(const struct sem_ctx *ctx);
SEM_TESTS(SEM_DECLARE)
#undef SEM_DECLARE

/* ---- checks: a failed one prints FILE:LINE and the reason, then exits 1 ---- */

extern const struct sem_ctx *sem_current; /* the subtest running, named by failures */

_Noreturn void sem_fail_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * A failed comparison of a result with what Linux gives (SEM_EXPECT, SEM_EXPECT_ERRNO, event
 * masks): fatal like sem_fail_at, except that with SEM_KEEP_GOING=1 in the environment it is
 * reported and the subtest goes on, so that one run lists every difference (later failures
 * may then be consequences of earlier ones). The exit status is 1 all the same.
 */
void sem_mismatch_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
extern bool sem_mismatched; /* a mismatch was reported and survived (SEM_KEEP_GOING) */
void sem_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *sem_errno_name(int error);

#define SEM_FAIL(...) sem_fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define SEM_CHECK(cond, ...)                              \
	do {                                              \
		if (!(cond))                              \
			sem_fail_at(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)
/* A check of a result against the kernel's that SEM_KEEP_GOING=1 lets the subtest survive. */
#define SEM_MATCH(cond, ...)                              \
	do {                                              \
		if (!(cond))                              \
			sem_mismatch_at(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

/* EXPR must return exactly VALUE; its result is the expression's value. */
#define SEM_EXPECT(expr, value)                                                              \
	({                                                                                   \
		long long sem_r_ = (long long)(expr);                                        \
		int sem_e_ = errno;                                                          \
		if (sem_r_ != (long long)(value))                                           \
			sem_mismatch_at(__FILE__, __LINE__, "%s returned %lld (errno %s), expected %lld", \
				    #expr, sem_r_, sem_r_ < 0 ? sem_errno_name(sem_e_) : "-",     \
				    (long long)(value));                                    \
		sem_r_;                                                                      \
	})

/* EXPR must fail: return -1 with errno ERR. */
#define SEM_EXPECT_ERRNO(expr, err)                                                          \
	do {                                                                                 \
		long long sem_r_ = (long long)(expr);                                        \
		int sem_e_ = errno;                                                          \
		if (sem_r_ != -1 || sem_e_ != (err))                                         \
			sem_mismatch_at(__FILE__, __LINE__, "%s returned %lld (errno %s), expected -1 %s", \
				    #expr, sem_r_, sem_r_ < 0 ? sem_errno_name(sem_e_) : "-",     \
				    sem_errno_name(err));                                     \
	} while (0)

/* EXPR must succeed (return >= 0); its result is the expression's value. */
#define SEM_OK(expr)                                                                         \
	({                                                                                   \
		long long sem_r_ = (long long)(expr);                                        \
		int sem_e_ = errno;                                                          \
		if (sem_r_ < 0)                                                              \
			sem_fail_at(__FILE__, __LINE__, "%s failed: %s", #expr,                 \
				    sem_errno_name(sem_e_));                                  \
		sem_r_;                                                                      \
	})

/* ---- connections ---- */

void sem_pair_open(const struct sem_ctx *ctx, struct sem_pair *pair);
/* socket_flags go to socket()'s type (SOCK_CLOEXEC, SOCK_NONBLOCK); accept_flags < 0 means
 * accept(), else accept4() with those flags. */
void sem_pair_open_flags(const struct sem_ctx *ctx, struct sem_pair *pair, int socket_flags,
			 int accept_flags);
/* Another connection through an open pair's listener. */
void sem_pair_connect_more(const struct sem_ctx *ctx, const struct sem_pair *pair, int *client,
			   int *server);
/* Connects to addr from its own thread (as a connect that waits for accept would need). */
struct sem_connector {
	pthread_t thread;
	const struct sem_ctx *ctx;
	const struct sockaddr_storage *addr;
	socklen_t len;
	int flags; /* for socket()'s type */
	int fd;    /* the connected socket, after sem_connect_join */
};
void sem_connect_start(struct sem_connector *c);
int sem_connect_join(struct sem_connector *c);
int sem_listen_on(const struct sem_ctx *ctx, struct sockaddr_storage *addr, socklen_t *len);
bool sem_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
const char *sem_sockaddr_text(const struct sockaddr_storage *addr, char *buf, size_t size);

/* ---- time, threads, signals ---- */

int64_t sem_now_ms(void);
void sem_sleep_ms(int ms);
pthread_t sem_thread_start(void *(*fn)(void *), void *arg);
void *sem_thread_join(pthread_t thread);

/* A thread that sleeps delay_ms, then sends len bytes of buf on fd (all of them). */
struct sem_later_send {
	pthread_t thread;
	int fd;
	int delay_ms;
	const void *buf;
	size_t len;
	int pieces; /* sent in this many equal pieces, delay_ms before each (0 means 1) */
};
void sem_later_send_start(struct sem_later_send *job);
void sem_later_send_join(struct sem_later_send *job);

/* A thread that sleeps delay_ms, then sends sig to target. */
struct sem_later_signal {
	pthread_t thread;
	pthread_t target;
	int sig;
	int delay_ms;
};
void sem_later_signal_start(struct sem_later_signal *job);
void sem_later_signal_join(struct sem_later_signal *job);

/*
 * A thread that sends SIGUSR2 to the thread that started it every after_ms until stopped:
 * it turns a call that blocks where Linux returns at once into a quick failure
 * instead of a 10 s timeout. The call then returns (EINTR), and the caller checks the time.
 */
struct sem_watchdog {
	pthread_t thread;
	pthread_t target;
	int after_ms;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
};
void sem_watchdog_start(struct sem_watchdog *dog);
void sem_watchdog_stop(struct sem_watchdog *dog);

/* Counts deliveries of sig from now on (handler without SA_RESTART). */
void sem_signal_count_start(int sig);
int sem_signal_count(int sig);
void sem_signal_block(int sig, bool block);

/* ---- bytes ---- */

/* A reproducible byte stream: byte number pos of stream seed. */
void sem_pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t pos);
/* Index of the first byte of buf that differs from the stream at pos, or len. */
size_t sem_pattern_find_mismatch(const void *buf, size_t len, uint64_t seed, uint64_t pos);

void sem_send_all(int fd, const void *buf, size_t len);
void sem_recv_exact(int fd, void *buf, size_t len);
void sem_send_pattern(int fd, uint64_t seed, uint64_t pos, size_t len);
void sem_recv_pattern(int fd, uint64_t seed, uint64_t pos, size_t len);
/* Sends the stream with MSG_DONTWAIT | extra_flags until EAGAIN; returns the bytes sent. */
size_t sem_fill_until_eagain(int fd, uint64_t seed, int extra_flags);
/* Waits up to timeout_ms until at least len bytes can be peeked at (MSG_PEEK). */
void sem_wait_peekable(int fd, size_t len, int timeout_ms);

/* A thread that receives (or sends) len bytes of a stream on fd, in varied sizes. */
struct sem_stream {
	pthread_t thread;
	int fd;
	uint64_t seed;
	size_t len;
	size_t max_chunk; /* 0: 64 KiB */
};
void sem_stream_send_start(struct sem_stream *job);
void sem_stream_recv_start(struct sem_stream *job);
void sem_stream_join(struct sem_stream *job);

/* ---- descriptors ---- */

void sem_set_nonblocking(int fd, bool on);
bool sem_is_nonblocking(int fd);
/* poll() of one fd; returns revents (0 on timeout). */
short sem_poll_one(int fd, short events, int timeout_ms);
/* Waits up to timeout_ms for all of `events` in revents; returns the revents seen. */
short sem_wait_events(int fd, short events, int timeout_ms);
const char *sem_poll_text(int revents, char *buf, size_t size);
const char *sem_epoll_text(unsigned events, char *buf, size_t size);

#endif
