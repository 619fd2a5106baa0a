/*
 * control — see include/service/control.h.
 *
 * DESIGN
 * A connection lives as a bufferevent and goes through three states:
 * READING its request (until "\n", at most CONTROL_LINE_MAX bytes, else
 * refused), PENDING while the handler works on it (a reload, off the
 * reactor), WRITING the answer, which the handler put into the output
 * buffer whole (bounded by CONTROL_REPLY_MAX); the connection is freed
 * when the output has drained.
 *
 * Deadlines are for the whole request and the whole answer, not per
 * byte: a client must send its line within CONTROL_TIMEOUT_S of
 * connecting, and read its answer within CONTROL_TIMEOUT_S of it being
 * ready, or it is dropped; a client that trickles a byte now and then
 * cannot keep a slot. PENDING has no deadline: the daemon is the slow one.
 * Past CONTROL_MAX_CLIENTS, the client that has waited longest without
 * sending a request is dropped to make room (else the one that has had
 * its answer longest), never the new one: a stuck or hostile client
 * cannot lock the operator out. Only when every slot waits for the daemon
 * (PENDING) is the new one refused.
 *
 * One request per connection: the answer's body ends at EOF, so a second
 * answer could not be told from the first. Bytes after the request line
 * are refused with a message and neither request is carried out.
 *
 * A reload that moves the socket runs inside a handler of the old
 * Control: it only stops it (control_stop: no more listening, file gone),
 * so the answers to the clients it still has go out.
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

typedef enum {
	CLIENT_READING,
	CLIENT_PENDING,
	CLIENT_WRITING,
} ClientState;

struct Control {
	struct event_base *base;
	char *path;
	int fd;
	struct event *accept_ev;
	ControlHandler fn;
	void *arg;
	dev_t dev;		/* the socket file we made */
	ino_t ino;
	ControlClient *clients;	/* connected, newest first */
	ControlClient *oldest;	/* the list's tail */
	size_t n_clients;
};

struct ControlClient {
	ControlClient *next, *prev;	/* newer, older: prev is newer */
	Control *ctl;
	struct bufferevent *bev;
	struct event *deadline;
	ClientState state;
	void (*gone)(void *arg);	/* control_on_gone */
	void *gone_arg;
};

static void
client_free(ControlClient *cl)
{
	Control *c = cl->ctl;

	if (cl->state == CLIENT_PENDING && cl->gone != NULL)
		cl->gone(cl->gone_arg);
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	else
		c->oldest = cl->prev;
	c->n_clients--;
	event_free(cl->deadline);
	bufferevent_free(cl->bev);
	free(cl);
}

/* A last word to a client that is dropped: best effort, never waits. */
static void
say_and_drop(ControlClient *cl, const char *msg)
{
	(void)!send(bufferevent_getfd(cl->bev), msg, strlen(msg),
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	client_free(cl);
}

static void
arm_deadline(ControlClient *cl)
{
	struct timeval tv = { CONTROL_TIMEOUT_S, 0 };

	event_add(cl->deadline, &tv);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	ControlClient *cl = arg;

	(void)fd;
	(void)what;
	if (cl->state == CLIENT_READING)
		say_and_drop(cl, "ERR\nno complete request within "
		    CONTROL_TIMEOUT_TEXT "\n");
	else
		client_free(cl);	/* did not read its answer in time */
}

static void
answer(ControlClient *cl, int ok, struct evbuffer *body)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);

	cl->state = CLIENT_WRITING;
	arm_deadline(cl);
	bufferevent_disable(cl->bev, EV_READ);
	if (evbuffer_get_length(body) > CONTROL_REPLY_MAX) {
		evbuffer_add_printf(out, "ERR\nanswer too large (over %u "
		    "bytes)\n", CONTROL_REPLY_MAX);
		return;
	}
	evbuffer_add_printf(out, "%s\n", ok == 0 ? "OK" : "ERR");
	evbuffer_add(out, evbuffer_pullup(body, -1), evbuffer_get_length(body));
}

void
control_answer(ControlClient *cl, int ok, struct evbuffer *body)
{
	if (cl->state == CLIENT_PENDING)
		answer(cl, ok, body);
}

void
control_on_gone(ControlClient *cl, void (*gone)(void *arg), void *arg)
{
	cl->gone = gone;
	cl->gone_arg = arg;
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	ControlClient *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *body = evbuffer_new();
	struct evbuffer_ptr eol;
	ControlRequest req;
	char line[CONTROL_LINE_MAX + 1];
	size_t len;
	int ok = -1;

	if (cl->state != CLIENT_READING || body == NULL)
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
	if (evbuffer_get_length(in) > len) {
		evbuffer_add_printf(body, "bad request: more than one request "
		    "on one connection; nothing was done (one request per "
		    "connection: the answer ends when the daemon closes it)\n");
		answer(cl, -1, body);
		goto out;
	}
	evbuffer_remove(in, line, len);
	if (control_parse(line, len, &req) < 0) {
		evbuffer_add_printf(body, "bad request: %s\n", req.error);
	} else {
		cl->state = CLIENT_PENDING;
		event_del(cl->deadline);
		bufferevent_disable(cl->bev, EV_READ);
		ok = cl->ctl->fn(&req, cl, body, cl->ctl->arg);
		if (ok == CONTROL_LATER)
			goto out;	/* control_answer follows */
	}
	answer(cl, ok, body);
out:
	if (body != NULL)
		evbuffer_free(body);
}

/* The answer has drained: done. */
static void
on_write(struct bufferevent *bev, void *arg)
{
	ControlClient *cl = arg;

	char sink[4096];
	ssize_t n;
	size_t left = 64 * 1024;

	if (cl->state != CLIENT_WRITING ||
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

/* EOF or an error: drop the client (not while the handler holds it). */
static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	ControlClient *cl = arg;

	(void)bev;
	(void)what;
	if (cl->state == CLIENT_PENDING)
		bufferevent_disable(cl->bev, EV_READ | EV_WRITE);
	else
		client_free(cl);
}

/*
 * Room for one more client: the one that has waited longest without a
 * request goes, else the one whose answer has waited longest. false when
 * every slot waits for the daemon.
 */
static bool
make_room(Control *c)
{
	ControlClient *victim = NULL;

	for (ControlClient *cl = c->oldest; cl != NULL; cl = cl->prev)
		if (cl->state == CLIENT_READING) {
			victim = cl;
			break;
		}
	for (ControlClient *cl = c->oldest; victim == NULL && cl != NULL;
	    cl = cl->prev)
		if (cl->state == CLIENT_WRITING)
			victim = cl;
	if (victim == NULL)
		return false;
	if (victim->state == CLIENT_READING)
		say_and_drop(victim, "ERR\ndropped without a request: "
		    "another client needed the slot\n");
	else
		client_free(victim);
	return true;
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	static const char full[] = "ERR\ntoo many requests waiting for the "
	    "daemon; try again later\n";
	Control *c = arg;
	ControlClient *cl;
	int cfd;

	(void)what;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) >= 0) {
		if (c->n_clients >= CONTROL_MAX_CLIENTS && !make_room(c)) {
			(void)!send(cfd, full, sizeof full - 1, MSG_DONTWAIT |
			    MSG_NOSIGNAL);
			close(cfd);
			continue;
		}
		if ((cl = calloc(1, sizeof *cl)) == NULL) {
			close(cfd);
			continue;
		}
		cl->ctl = c;
		cl->bev = bufferevent_socket_new(c->base, cfd,
		    BEV_OPT_CLOSE_ON_FREE);
		cl->deadline = evtimer_new(c->base, on_deadline, cl);
		if (cl->bev == NULL || cl->deadline == NULL) {
			if (cl->bev != NULL)
				bufferevent_free(cl->bev);
			else
				close(cfd);
			if (cl->deadline != NULL)
				event_free(cl->deadline);
			free(cl);
			continue;
		}
		cl->next = c->clients;
		if (c->clients != NULL)
			c->clients->prev = cl;
		else
			c->oldest = cl;
		c->clients = cl;
		c->n_clients++;
		bufferevent_setcb(cl->bev, on_read, on_write, on_event, cl);
		arm_deadline(cl);
		/* Read no more than a request can be, and a byte more. */
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

size_t
control_clients(const Control *c)
{
	return c->n_clients;
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
	c->oldest = NULL;
	free(c->path);
	free(c);
}
