/* The kernel TCP endpoint: the socket the program holds carries the bytes itself. */
#include "libc.h"
#include "transport.h"

static ssize_t tcp_recvmsg(struct vi_conn *conn, int fd, struct msghdr *msg, int flags)
{
	return vi_libc_result(vi_libc.recvmsg(fd, msg, flags));
}

static ssize_t tcp_sendmsg(struct vi_conn *conn, int fd, const struct msghdr *msg, int flags)
{
	return vi_libc_result(vi_libc.sendmsg(fd, msg, flags));
}

static int tcp_shutdown(struct vi_conn *conn, int fd, int how)
{
	return (int)vi_libc_result(vi_libc.shutdown(fd, how));
}

static void tcp_destroy(struct vi_conn *conn)
{
	/* A connector refused by the listener kept its segment mapped until now. */
	vi_shm_release_fallback(conn);
}

const struct vi_endpoint_ops vi_tcp_ops = {
	.name = "tcp",
	.recvmsg = tcp_recvmsg,
	.sendmsg = tcp_sendmsg,
	.shutdown = tcp_shutdown,
	.destroy = tcp_destroy,
};

int vi_tcp_attach(struct vi_conn *conn, int fd)
{
	conn->shm.base = NULL; /* nothing of a same-host endpoint to release at close */
	conn->ops = &vi_tcp_ops;
	conn->transport = VI_TRANSPORT_TCP;
	return 0;
}

void vi_conn_destroy(struct vi_conn *conn)
{
	if (conn->ops != NULL)
		conn->ops->destroy(conn);
	conn->ops = NULL;
}
