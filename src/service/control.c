/*
 * control — see include/service/control.h.
 *
 * DESIGN
 * A connection lives as a bufferevent: the request is read until "\n"
 * (at most CONTROL_LINE_MAX bytes, else refused), the handler writes the
 * whole answer into the output buffer at once (its size is bounded by
 * CONTROL_REPLY_MAX), reading stops, and the connection is freed when
 * the output has drained. A read or write timeout drops the client, so a
 * peer that connects and stalls costs one fd and a buffer for at most
 * CONTROL_TIMEOUT_S, never the reactor's time.
 *
 * A reload that moves the socket runs inside a handler of the old
 * Control: it only stops it (control_stop: no more listening, file gone)
 * and frees it later, so the answer to that reload still goes out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "service/control.h"

typedef struct ControlClient Client;

struct Control {
	struct event_base *base;
	char *path;
	int fd;
	struct event *accept_ev;
	ControlHandler fn;
	void *arg;
	dev_t dev;		/* the socket file we made */
	ino_t ino;
	Client *clients;	/* connected, newest first */
	size_t n_clients;
};

struct ControlClient {
	Client *next, *prev;
	Control *ctl;
	struct bufferevent *bev;
	bool answered;
	/* control_defer: the handler answers later; gone if we go first. */
	bool deferred;
	void (*gone)(void *arg);
	void *gone_arg;
};

static void
client_free(Client *cl)
{
	Control *c = cl->ctl;

	if (cl->deferred && cl->gone != NULL)
		cl->gone(cl->gone_arg);
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	c->n_clients--;
	bufferevent_free(cl->bev);
	free(cl);
}

static void
answer(Client *cl, int ok, struct evbuffer *body)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);

	cl->answered = true;
	bufferevent_disable(cl->bev, EV_READ);
	if (evbuffer_get_length(body) > CONTROL_REPLY_MAX) {
		evbuffer_add_printf(out, "ERR\nanswer too large (over %u "
		    "bytes)\n", CONTROL_REPLY_MAX);
		return;
	}
	evbuffer_add_printf(out, "%s\n", ok == 0 ? "OK" : "ERR");
	evbuffer_add_buffer(out, body);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	Client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *body = evbuffer_new();
	struct evbuffer_ptr eol;
	ControlRequest req;
	char line[CONTROL_LINE_MAX + 1];
	size_t len;
	int ok = -1;

	if (cl->deferred) {
		/* Waiting for its answer: more input is no request. */
		evbuffer_drain(in, evbuffer_get_length(in));
		goto out;
	}
	if (cl->answered || body == NULL)
		goto out;
	eol = evbuffer_search(in, "\n", 1, NULL);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) < CONTROL_LINE_MAX)
			goto out;	/* wait for the rest */
		evbuffer_add_printf(body, "bad request: longer than %d "
		    "bytes\n", CONTROL_LINE_MAX);
		answer(cl, -1, body);
		goto out;
	}
	len = (size_t)eol.pos + 1;
	if (len > CONTROL_LINE_MAX) {
		evbuffer_add_printf(body, "bad request: longer than %d "
		    "bytes\n", CONTROL_LINE_MAX);
		answer(cl, -1, body);
		goto out;
	}
	evbuffer_remove(in, line, len);
	if (control_parse(line, len, &req) < 0)
		evbuffer_add_printf(body, "bad request: %s\n", req.error);
	else
		ok = cl->ctl->fn(&req, body, cl, cl->ctl->arg);
	if (ok == CONTROL_LATER && cl->deferred)
		goto out;
	answer(cl, ok == 0 ? 0 : -1, body);
out:
	if (body != NULL)
		evbuffer_free(body);
}

void
control_defer(ControlClient *cl, void (*gone)(void *arg), void *arg)
{
	struct timeval timeout = { CONTROL_TIMEOUT_S, 0 };

	cl->deferred = true;
	cl->gone = gone;
	cl->gone_arg = arg;
	/* No read timeout while the work runs; reading goes on, so that a
	 * hang-up is noticed. */
	bufferevent_set_timeouts(cl->bev, NULL, &timeout);
}

void
control_answer(ControlClient *cl, int ok, struct evbuffer *body)
{
	cl->deferred = false;
	cl->gone = NULL;
	answer(cl, ok, body);
}

/* The answer has drained: done. */
static void
on_write(struct bufferevent *bev, void *arg)
{
	Client *cl = arg;

	char sink[4096];
	ssize_t n;
	size_t left = 64 * 1024;

	if (!cl->answered ||
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	/* Closing a UNIX socket with unread input resets the peer, which
	 * may then lose the answer (a refused over-long request): read what
	 * is already there first, up to a bound. */
	while (left > 0 && (n = recv(bufferevent_getfd(bev), sink, sizeof sink,
	    MSG_DONTWAIT)) > 0)
		left -= (size_t)n < left ? (size_t)n : left;
	client_free(cl);
}

/* EOF, an error or a timeout: drop the client. */
static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	client_free(arg);
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	Control *c = arg;
	struct timeval timeout = { CONTROL_TIMEOUT_S, 0 };
	Client *cl;
	int cfd;

	(void)what;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) >= 0) {
		if (c->n_clients >= CONTROL_MAX_CLIENTS ||
		    (cl = calloc(1, sizeof *cl)) == NULL) {
			close(cfd);
			continue;
		}
		cl->ctl = c;
		cl->bev = bufferevent_socket_new(c->base, cfd,
		    BEV_OPT_CLOSE_ON_FREE);
		if (cl->bev == NULL) {
			close(cfd);
			free(cl);
			continue;
		}
		cl->next = c->clients;
		if (c->clients != NULL)
			c->clients->prev = cl;
		c->clients = cl;
		c->n_clients++;
		bufferevent_setcb(cl->bev, on_read, on_write, on_event, cl);
		bufferevent_set_timeouts(cl->bev, &timeout, &timeout);
		/* Read no more than a request can be. */
		bufferevent_setwatermark(cl->bev, EV_READ, 0,
		    CONTROL_LINE_MAX + 1);
		if (bufferevent_enable(cl->bev, EV_READ | EV_WRITE) < 0)
			client_free(cl);
	}
}

/* mkdir -p of path's parent, each new directory 0755. */
static int
make_parent(const char *path)
{
	char dir[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof dir)
		return -ENAMETOOLONG;
	memcpy(dir, path, n + 1);
	for (char *s = dir + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

/*
 * What is at path: 0 nothing (or a stale socket, now removed),
 * -EADDRINUSE somebody answers, -EEXIST not a socket.
 */
static int
clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r = 0;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0 ||
	    errno == EAGAIN || errno == EINPROGRESS)
		r = -EADDRINUSE;
	else if (errno == ECONNREFUSED && unlink(path) < 0 && errno != ENOENT)
		r = -errno;
	close(fd);
	return r;
}

int
control_new(struct event_base *base, const char *path, ControlHandler fn,
    void *arg, Control **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	Control *c;
	int r;

	if (path[0] != '/')
		return -EINVAL;
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((c = calloc(1, sizeof *c)) == NULL)
		return -ENOMEM;
	c->fd = -1;
	c->base = base;
	c->fn = fn;
	c->arg = arg;
	if ((c->path = strdup(path)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = make_parent(path)) < 0 || (r = clear_stale(path, &sa)) < 0)
		goto fail;
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0) {
		r = -errno;
		goto fail;
	}
	/* Linux gives the socket file the socket inode's mode (less the
	 * umask, which main sets to 0): 0660 from the start, no window. */
	if (fchmod(c->fd, 0660) < 0 ||
	    bind(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		r = -errno;
		goto fail;
	}
	if (chmod(path, 0660) < 0 || stat(path, &st) < 0 ||
	    listen(c->fd, 16) < 0) {
		r = -errno;
		unlink(path);
		goto fail;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->accept_ev = event_new(base, c->fd, EV_READ | EV_PERSIST, on_accept,
	    c);
	if (c->accept_ev == NULL || event_add(c->accept_ev, NULL) < 0) {
		r = -ENOMEM;
		unlink(path);
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	if (c->fd >= 0)
		close(c->fd);
	if (c->accept_ev != NULL)
		event_free(c->accept_ev);
	free(c->path);
	free(c);
	return r;
}

const char *
control_path(const Control *c)
{
	return c->path;
}

int
control_set_group(Control *c, gid_t gid)
{
	struct stat st;
	int fd, r = 0;

	if (c->fd < 0)
		return -EBADF;
	/* Through an O_PATH fd checked to be our socket file: the name
	 * cannot be swapped between the check and the chown. */
	if ((fd = open(c->path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (st.st_dev != c->dev || st.st_ino != c->ino)
		r = -ESTALE;
	else if (st.st_gid != gid &&
	    fchownat(fd, "", (uid_t)-1, gid, AT_EMPTY_PATH) < 0)
		r = -errno;
	close(fd);
	return r;
}

void
control_stop(Control *c)
{
	struct stat st;

	if (c == NULL || c->fd < 0)
		return;
	event_free(c->accept_ev);
	c->accept_ev = NULL;
	close(c->fd);
	c->fd = -1;
	/* Only our own file: another daemon may have taken the path. */
	if (lstat(c->path, &st) == 0 && st.st_dev == c->dev &&
	    st.st_ino == c->ino)
		unlink(c->path);
}

void
control_free(Control *c)
{
	if (c == NULL)
		return;
	control_stop(c);
	while (c->clients != NULL)
		client_free(c->clients);
	free(c->path);
	free(c);
}
