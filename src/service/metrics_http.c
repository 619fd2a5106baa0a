/*
 * metrics_http — see include/service/metrics_http.h.
 *
 * DESIGN
 * evhttp (libevent 2.1, Debian 12) has no connection limit, and tells
 * its user nothing of a connection until a whole request has arrived;
 * its own timeout is one of idleness, which a client trickling a byte at
 * a time never reaches. The bounds are kept beside it, without touching
 * its data path:
 *
 * - evhttp_set_bevcb: evhttp asks us for the bufferevent of every
 *   connection it accepts (we make the plain one it would make itself).
 *   That is our "accepted": the connection takes a slot in conns[]. Its
 *   fd is set on the bufferevent right after, so a zero-delay event
 *   (learn) reads it from there once evhttp's accept has returned, with
 *   the socket's inode, which tells it apart from whatever later gets
 *   the same fd number.
 * - A sweep every SWEEP_MS frees the slots of sockets evhttp has closed
 *   (the fd is gone or is another file now) and shuts down, both ways,
 *   the sockets past their deadline: METRICS_HTTP_TIMEOUT_S from the
 *   accept, or from the last answer on a kept-alive connection. evhttp
 *   then sees the end of the connection as a client's and frees it
 *   itself. shutdown, never close: the fd stays evhttp's.
 * - At METRICS_HTTP_MAX_CONNECTIONS slots the listener is disabled, so
 *   further clients wait in the kernel's backlog; a sweep that frees a
 *   slot enables it again.
 *
 * Only the reactor closes these fds (evhttp runs on it), so a socket
 * found alive by fstat is still that socket when it is shut down.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "service/metrics_http.h"

#define BACKLOG 64
#define SWEEP_MS 250
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One accepted connection, as seen from outside evhttp. */
typedef struct Conn {
	struct bufferevent *bev;	/* until learn has read its fd */
	int fd;			/* -1: not learnt yet */
	ino_t ino;		/* of the socket, while it is open */
	time_t deadline;	/* CLOCK_MONOTONIC seconds */
	bool shut;		/* shut down at its deadline */
} Conn;

struct MetricsHttp {
	struct event_base *base;
	char *listen;
	struct sockaddr_storage addr;	/* what listen says, parsed */
	socklen_t addrlen;
	struct evhttp *http;
	struct evconnlistener *listener;	/* evhttp's; we pause it */
	bool paused;		/* listener disabled: every slot taken */
	MetricsHttpRender fn;
	void *arg;
	Conn conns[METRICS_HTTP_MAX_CONNECTIONS];
	size_t n_conns;
	struct event *learn;	/* zero-delay: fds of new connections */
	struct event *sweep;	/* every SWEEP_MS while a slot is taken */
};

static time_t
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
arm_sweep(MetricsHttp *m)
{
	struct timeval tv = { 0, SWEEP_MS * 1000 };

	if (!evtimer_pending(m->sweep, NULL))
		evtimer_add(m->sweep, &tv);
}

static void
drop_slot(MetricsHttp *m, size_t i)
{
	m->conns[i] = m->conns[--m->n_conns];
}

/* Is c's socket still open (its fd, with its inode)? */
static bool
conn_open(const Conn *c)
{
	struct stat st;

	return fstat(c->fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_ino == c->ino;
}

static void
on_learn(evutil_socket_t unused, short what, void *arg)
{
	MetricsHttp *m = arg;
	struct stat st;

	(void)unused;
	(void)what;
	for (size_t i = 0; i < m->n_conns;) {
		Conn *c = &m->conns[i];
		int fd;

		if (c->fd >= 0) {
			i++;
			continue;
		}
		fd = bufferevent_getfd(c->bev);
		c->bev = NULL;
		if (fd < 0 || fstat(fd, &st) < 0) {
			drop_slot(m, i);
			continue;
		}
		c->fd = fd;
		c->ino = st.st_ino;
		c->deadline = now_s() + METRICS_HTTP_TIMEOUT_S;
		i++;
	}
	arm_sweep(m);
}

static void
on_sweep(evutil_socket_t unused, short what, void *arg)
{
	MetricsHttp *m = arg;
	time_t now = now_s();

	(void)unused;
	(void)what;
	for (size_t i = 0; i < m->n_conns;) {
		Conn *c = &m->conns[i];

		if (c->fd < 0) {	/* learn has not run yet */
			i++;
			continue;
		}
		if (!conn_open(c)) {
			drop_slot(m, i);
			continue;
		}
		if (!c->shut && now >= c->deadline) {
			shutdown(c->fd, SHUT_RDWR);
			c->shut = true;
		}
		i++;
	}
	if (m->paused && m->n_conns < METRICS_HTTP_MAX_CONNECTIONS &&
	    evconnlistener_enable(m->listener) == 0)
		m->paused = false;
	if (m->n_conns > 0)
		arm_sweep(m);
}

/* evhttp_set_bevcb: the bufferevent of a connection being accepted. */
static struct bufferevent *
on_new_connection(struct event_base *base, void *arg)
{
	MetricsHttp *m = arg;
	/* As evhttp makes it when there is no bevcb; evhttp sets the fd. */
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);

	if (bev == NULL)
		return NULL;	/* evhttp tries to make its own */
	if (m->n_conns < METRICS_HTTP_MAX_CONNECTIONS) {
		m->conns[m->n_conns++] = (Conn){ .bev = bev, .fd = -1 };
		event_active(m->learn, EV_TIMEOUT, 0);
	}
	/* The listener checks after each accept whether it was disabled. */
	if (m->n_conns >= METRICS_HTTP_MAX_CONNECTIONS && !m->paused &&
	    evconnlistener_disable(m->listener) == 0)
		m->paused = true;
	return bev;
}

/* A kept-alive connection gets a new deadline for its next request. */
static void
renew_deadline(MetricsHttp *m, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ?
	    evhttp_connection_get_bufferevent(evcon) : NULL;
	int fd = bev != NULL ? bufferevent_getfd(bev) : -1;

	/* The fd number alone may also be a closed connection's that the
	 * sweep has not freed yet: the inode tells them apart. */
	for (size_t i = 0; i < m->n_conns && fd >= 0; i++)
		if (m->conns[i].fd == fd && conn_open(&m->conns[i])) {
			m->conns[i].deadline = now_s() +
			    METRICS_HTTP_TIMEOUT_S;
			break;
		}
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	if (body != NULL)
		evbuffer_add(body, text, strlen(text));
	evhttp_send_reply(req, code, reason, body);
	if (body != NULL)
		evbuffer_free(body);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	MetricsHttp *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *body;

	renew_deadline(m, req);
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		reply_text(req, HTTP_NOTFOUND, "Not Found",
		    "not found: treesyncd serves /metrics only\n");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(h, "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed",
		    "method not allowed: /metrics answers GET and HEAD\n");
		return;
	}
	if ((body = evbuffer_new()) == NULL || m->fn(body, m->arg) < 0) {
		reply_text(req, 503, "Service Unavailable",
		    "cannot render the metrics now (out of memory)\n");
		goto out;
	}
	evhttp_add_header(h, "Content-Type", CONTENT_TYPE);
	/* HEAD: evhttp sends the headers (and the length) only. */
	evhttp_send_reply(req, HTTP_OK, "OK", body);
out:
	if (body != NULL)
		evbuffer_free(body);
}

/* socket, bind, listen: the listening fd, or the -errno of the step. */
static int
open_listener(const struct sockaddr *sa, socklen_t len)
{
	int fd, on = 1, r;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	/* A restart must not wait for the old connections' TIME_WAIT;
	 * on Linux this still refuses a port another socket listens on. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
	    (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof on) < 0) ||
	    bind(fd, sa, len) < 0 || listen(fd, BACKLOG) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int
metrics_http_new(struct event_base *base, const char *listen,
    const struct sockaddr *sa, socklen_t len, MetricsHttpRender fn,
    void *arg, MetricsHttp **ret)
{
	struct timeval idle = { METRICS_HTTP_TIMEOUT_S, 0 };
	MetricsHttp *m;
	int fd = -1, r = -ENOMEM;

	if (len > sizeof m->addr)
		return -EINVAL;
	if ((m = calloc(1, sizeof *m)) == NULL)
		return -ENOMEM;
	m->base = base;
	memcpy(&m->addr, sa, len);
	m->addrlen = len;
	m->fn = fn;
	m->arg = arg;
	if ((m->listen = strdup(listen)) == NULL ||
	    (m->learn = event_new(base, -1, 0, on_learn, m)) == NULL ||
	    (m->sweep = evtimer_new(base, on_sweep, m)) == NULL ||
	    (m->http = evhttp_new(base)) == NULL)
		goto fail;
	/* Every method reaches on_request, which answers 405 itself
	 * (evhttp would say 501 to the ones it is not allowed). */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(m->http, METRICS_HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, METRICS_HTTP_MAX_BODY);
	evhttp_set_timeout_tv(m->http, &idle);
	evhttp_set_default_content_type(m->http, "text/plain; charset=utf-8");
	evhttp_set_gencb(m->http, on_request, m);
	evhttp_set_bevcb(m->http, on_new_connection, m);
	if ((fd = open_listener(sa, len)) < 0) {
		r = fd;
		goto fail;
	}
	/* No callback yet: evhttp_bind_listener sets its own. */
	m->listener = evconnlistener_new(base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (m->listener == NULL)
		goto fail;
	fd = -1;
	if (evhttp_bind_listener(m->http, m->listener) == NULL) {
		evconnlistener_free(m->listener);
		goto fail;
	}
	*ret = m;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (m->http != NULL)
		evhttp_free(m->http);
	if (m->learn != NULL)
		event_free(m->learn);
	if (m->sweep != NULL)
		event_free(m->sweep);
	free(m->listen);
	free(m);
	return r;
}

const char *
metrics_http_listen(const MetricsHttp *m)
{
	return m->listen;
}

const struct sockaddr *
metrics_http_addr(const MetricsHttp *m, socklen_t *len)
{
	*len = m->addrlen;
	return (const struct sockaddr *)&m->addr;
}

void
metrics_http_free(MetricsHttp *m)
{
	if (m == NULL)
		return;
	evhttp_free(m->http);	/* its listener and connections too */
	event_free(m->learn);
	event_free(m->sweep);
	free(m->listen);
	free(m);
}
