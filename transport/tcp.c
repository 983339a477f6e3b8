/* The kernel TCP endpoint: the socket the program holds carries the bytes itself. */
#include "libc.h"
#include "transport.h"

ssize_t vi_tcp_recvmsg(struct vi_conn *conn, int fd, struct msghdr *msg, int flags)
{
	return vi_libc_result(vi_libc.recvmsg(fd, msg, flags));
}

ssize_t vi_tcp_sendmsg(struct vi_conn *conn, int fd, const struct msghdr *msg, int flags)
{
	return vi_libc_result(vi_libc.sendmsg(fd, msg, flags));
}

int vi_tcp_shutdown(struct vi_conn *conn, int fd, int how)
{
	return (int)vi_libc_result(vi_libc.shutdown(fd, how));
}

static void tcp_destroy(struct vi_conn *conn)
{
}

static const struct vi_endpoint_ops vi_tcp_ops = {
	.name = "tcp",
	.recvmsg = vi_tcp_recvmsg,
	.sendmsg = vi_tcp_sendmsg,
	.shutdown = vi_tcp_shutdown,
	.destroy = tcp_destroy,
};

int vi_tcp_attach(struct vi_conn *conn, int fd)
{
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
