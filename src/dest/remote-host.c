/*
 * remote-host — see include/dest/remote-host.h.
 *
 * DESIGN. Hosts are kept in one list (reactor thread only), found by the
 * remote's name and settings: two pairs with destinations on "web2" share
 * a host, and a reload that changes web2's settings gets a new one (with
 * a socket path of its own) while the old one still serves the retiring
 * pair. The master is a child of ours (proc.c): it prints
 * REMOTE_SSH_UP_LINE through its LocalCommand once authenticated and
 * listening on its socket, and its exit is the connection's end, so no
 * client has to guess. Clients (sessions, rsync runs) that fail report it
 * (remote_host_failed), which ends the master so every other user of the
 * connection learns the same thing from the same event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dest/proc.h"
#include "dest/remote-host.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/synclog.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define ERR_KEEP 4096		/* stderr kept for the reason */

struct RemoteHost {
	struct event_base *base;
	RemoteConfig rc;	/* copies: the Config may be reloaded */
	unsigned refs;
	RemoteHostState state;
	Proc *master;
	struct event *retry;
	uint64_t retry_at_ms;
	unsigned failures;
	time_t away_since;
	RemoteFault fault;
	char reason[512];
	char logged[512];	/* the last reason logged: said once */
	char err[ERR_KEEP];	/* the master's stderr, last bytes */
	RemoteHostListener *listeners;
	RemoteHost *next;
};

static RemoteHost *hosts;
static unsigned host_serial;

static bool
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL &&
	    strcmp(a, b) == 0);
}

static bool
same_settings(const RemoteConfig *a, const RemoteConfig *b)
{
	return same_str(a->name, b->name) && same_str(a->host, b->host) &&
	    a->port == b->port && same_str(a->user, b->user) &&
	    same_str(a->identity, b->identity) &&
	    same_str(a->known_hosts, b->known_hosts) &&
	    a->timeout_s == b->timeout_s && a->bwlimit_kib == b->bwlimit_kib;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
notify(RemoteHost *h)
{
	RemoteHostListener *l, *next;

	for (l = h->listeners; l != NULL; l = next) {
		next = l->next;
		l->changed(l->arg);
	}
}

static void connect_now(RemoteHost *h);

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	RemoteHost *h = arg;

	(void)fd;
	(void)what;
	if (h->refs > 0 && h->state == REMOTE_HOST_AWAY)
		connect_now(h);
}

/* The host is away: log it (once per reason), arm the retry. */
static void
go_away(RemoteHost *h, RemoteFault f, const char *why)
{
	uint64_t ms = BACKOFF_MIN_MS, jitter;
	struct timeval tv;
	bool was_up = h->state == REMOTE_HOST_UP;

	if (h->state != REMOTE_HOST_AWAY)
		h->away_since = h->away_since ? h->away_since : time(NULL);
	h->state = REMOTE_HOST_AWAY;
	h->fault = f;
	snprintf(h->reason, sizeof h->reason, "%s", why[0] ? why :
	    "the connection ended");
	for (unsigned i = 1; i < h->failures && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	h->failures++;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	jitter = ms / 5;
	ms = ms - jitter + (uint64_t)random() % (2 * jitter + 1);
	h->retry_at_ms = clock_ms() + ms;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(h->retry, &tv);
	if (was_up || strcmp(h->logged, h->reason) != 0) {
		if (f == REMOTE_HOST_KEY)
			synclog_msg(LOG_LEVEL_ERROR, "remote '%s' (%s): refused "
			    "to connect: its host key does not match the one "
			    "pinned in %s (nothing sent); check the host and "
			    "update that file if its key really changed; "
			    "trying again in %.1f s", h->rc.name, h->rc.host,
			    h->rc.known_hosts, (double)ms / 1000);
		else
			synclog_msg(f == REMOTE_AUTH ? LOG_LEVEL_ERROR :
			    LOG_LEVEL_WARN, "remote '%s' (%s): away: %s; "
			    "trying again in %.1f s", h->rc.name, h->rc.host,
			    h->reason, (double)ms / 1000);
		snprintf(h->logged, sizeof h->logged, "%s", h->reason);
	}
	notify(h);
}

static void
master_line(Proc *p, int fd, char *line, size_t len, void *arg)
{
	RemoteHost *h = arg;

	(void)p;
	if (fd == 1 && strcmp(line, REMOTE_SSH_UP_LINE) == 0 &&
	    h->state == REMOTE_HOST_CONNECTING) {
		if (h->away_since != 0)
			synclog_msg(LOG_LEVEL_INFO, "remote '%s' (%s): "
			    "connected again", h->rc.name, h->rc.host);
		h->state = REMOTE_HOST_UP;
		h->failures = 0;
		h->away_since = 0;
		h->reason[0] = '\0';
		h->logged[0] = '\0';
		notify(h);
		return;
	}
	if (fd == 2)
		remote_tail_add(h->err, sizeof h->err, line, len);
}

static void
master_exit(Proc *p, int status, void *arg)
{
	RemoteHost *h = arg;
	char why[512];
	RemoteFault f;

	(void)p;
	proc_free(h->master);
	h->master = NULL;
	f = remote_classify(status == 0 ? 255 : status, h->err, why,
	    sizeof why);
	if (f != REMOTE_HOST_KEY && f != REMOTE_AUTH)
		f = REMOTE_AWAY;
	if (why[0] == '\0' || strncmp(why, "exit ", 5) == 0)
		snprintf(why, sizeof why, "the connection to %s was lost (no "
		    "answer within the keep-alives)", h->rc.host);
	go_away(h, f, why);
}

static void
connect_now(RemoteHost *h)
{
	char **argv = remote_ssh_argv(&h->rc, REMOTE_SSH_MASTER);
	ProcSpec spec = { .argv = argv, .on_line = master_line,
	    .on_exit = master_exit, .arg = h,
	    .unlink_first = h->rc.control_path };
	int r;

	h->err[0] = '\0';
	h->state = REMOTE_HOST_CONNECTING;
	r = proc_spawn(h->base, &spec, &h->master);
	remote_argv_free(argv);
	if (r < 0) {
		h->master = NULL;
		go_away(h, REMOTE_AWAY, strerror(-r));
		return;
	}
	synclog_msg(LOG_LEVEL_DEBUG, "remote '%s': connecting to %s port %d",
	    h->rc.name, h->rc.host, h->rc.port);
	notify(h);
}

RemoteHost *
remote_host_get(struct event_base *base, const RemoteConfig *rc)
{
	RemoteHost *h;
	char *path;

	for (h = hosts; h != NULL; h = h->next)
		if (h->base == base && same_settings(&h->rc, rc)) {
			h->refs++;
			return h;
		}
	h = xcalloc(1, sizeof *h);
	h->base = base;
	h->rc = *rc;
	h->rc.name = xstrdup(rc->name);
	h->rc.host = xstrdup(rc->host);
	h->rc.user = dup_or_null(rc->user);
	h->rc.identity = xstrdup(rc->identity);
	h->rc.known_hosts = xstrdup(rc->known_hosts);
	/* A socket of its own: an older host of the same name may still
	 * serve a retiring pair. */
	if (asprintf(&path, "%s.%u", rc->control_path, ++host_serial) < 0)
		xoom();
	h->rc.control_path = path;
	h->refs = 1;
	h->retry = evtimer_new(base, on_retry, h);
	if (h->retry == NULL)
		xoom();
	h->next = hosts;
	hosts = h;
	if (host_serial == 1)
		srandom((unsigned)(time(NULL) ^ getpid()));
	return h;
}

static void
host_free(RemoteHost *h)
{
	RemoteHost **pp;

	for (pp = &hosts; *pp != h; pp = &(*pp)->next)
		;
	*pp = h->next;
	if (h->master != NULL) {
		proc_kill(h->master, SIGTERM);
		proc_free(h->master);
	}
	unlink(h->rc.control_path);
	event_free(h->retry);
	free(h->rc.name);
	free(h->rc.host);
	free(h->rc.user);
	free(h->rc.identity);
	free(h->rc.known_hosts);
	free(h->rc.control_path);
	free(h);
}

void
remote_host_put(RemoteHost *h)
{
	if (h != NULL && --h->refs == 0)
		host_free(h);
}

void
remote_host_listen(RemoteHost *h, RemoteHostListener *l)
{
	l->next = h->listeners;
	h->listeners = l;
}

void
remote_host_unlisten(RemoteHost *h, RemoteHostListener *l)
{
	RemoteHostListener **pp;

	for (pp = &h->listeners; *pp != NULL; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			return;
		}
}

void
remote_host_want(RemoteHost *h)
{
	if (h->state == REMOTE_HOST_DOWN ||
	    (h->state == REMOTE_HOST_AWAY && clock_ms() >= h->retry_at_ms))
		connect_now(h);
}

void
remote_host_failed(RemoteHost *h, RemoteFault f, const char *why)
{
	if (h->state != REMOTE_HOST_UP && h->state != REMOTE_HOST_CONNECTING)
		return;
	if (h->master != NULL) {
		/* Its exit would say "away" again: this reason is better. */
		proc_free(h->master);
		h->master = NULL;
	}
	go_away(h, f, why);
}

RemoteHostState
remote_host_state(const RemoteHost *h)
{
	return h->state;
}

time_t
remote_host_away_since(const RemoteHost *h)
{
	return h->state == REMOTE_HOST_UP ? 0 : h->away_since;
}

const char *
remote_host_reason(const RemoteHost *h)
{
	return h->reason[0] != '\0' ? h->reason : NULL;
}

RemoteFault
remote_host_fault(const RemoteHost *h)
{
	return h->fault;
}

const RemoteConfig *
remote_host_config(const RemoteHost *h)
{
	return &h->rc;
}

size_t
remote_host_children(void)
{
	size_t n = 0;

	for (RemoteHost *h = hosts; h != NULL; h = h->next)
		n += h->master != NULL;
	return n;
}

void
remote_host_stop_all(void)
{
	for (RemoteHost *h = hosts; h != NULL; h = h->next) {
		if (h->master != NULL) {
			proc_kill(h->master, SIGTERM);
			proc_free(h->master);
			h->master = NULL;
		}
		evtimer_del(h->retry);
		h->state = REMOTE_HOST_DOWN;
	}
}

/* ---- ops sessions ------------------------------------------------------ */

#define SESSION_TIMEOUT_FACTOR 4	/* an answer may take this many
					 * times the host's timeout */

typedef struct Pending {
	uint64_t id;
	RemoteReplyFn fn;
	void *arg;
	uint64_t sent_ms;
	struct Pending *next;
} Pending;

struct RemoteSession {
	RemoteHost *host;
	Proc *proc;
	RemoteSessionEvents ev;
	bool ready;
	uint64_t next_id;
	Pending *head, **tail;
	size_t outstanding;
	struct event *watchdog;
	char err[ERR_KEEP];
};

static void
session_fail_all(RemoteSession *s, int err)
{
	Pending *p;

	while ((p = s->head) != NULL) {
		s->head = p->next;
		s->outstanding--;
		p->fn(p->arg, err, NULL);
		free(p);
	}
	s->tail = &s->head;
}

static void
session_line(Proc *p, int fd, char *line, size_t len, void *arg)
{
	RemoteSession *s = arg;
	RemoteProtoLine pl;
	Pending *q;

	(void)p;
	if (fd == 2) {
		remote_tail_add(s->err, sizeof s->err, line, len);
		return;
	}
	if (!s->ready) {
		if (strncmp(line, "treesync-remote 1 ", 18) == 0 ||
		    strcmp(line, "treesync-remote 1") == 0) {
			s->ready = true;
			if (s->ev.ready != NULL)
				s->ev.ready(s->ev.arg);
		}
		return;
	}
	if (remote_proto_parse(line, len, &pl) < 0 || (q = s->head) == NULL ||
	    pl.id != q->id) {
		/* Out of step: the session cannot be trusted any more. */
		proc_kill(s->proc, SIGTERM);
		return;
	}
	s->head = q->next;
	if (s->head == NULL)
		s->tail = &s->head;
	s->outstanding--;
	q->fn(q->arg, remote_proto_status(&pl), &pl);
	free(q);
}

static void
session_exit(Proc *p, int status, void *arg)
{
	RemoteSession *s = arg;
	RemoteFault f;
	char why[512];

	(void)p;
	f = remote_classify(status == 0 ? 255 : status, s->err, why,
	    sizeof why);
	if (status == REMOTE_EXIT_UNAVAILABLE && f == REMOTE_FAILED &&
	    strstr(s->err, "pinned") != NULL)
		f = REMOTE_ROOT_CHANGED;
	if (why[0] == '\0')
		snprintf(why, sizeof why, "the ops session ended (exit %d)",
		    status);
	proc_free(s->proc);
	s->proc = NULL;
	evtimer_del(s->watchdog);
	session_fail_all(s, -EHOSTDOWN);
	if (s->ev.closed != NULL)
		s->ev.closed(s->ev.arg, f, why);
}

/* The oldest request waited too long: the session is hung. */
static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	RemoteSession *s = arg;
	uint64_t limit = (uint64_t)s->host->rc.timeout_s * 1000 *
	    SESSION_TIMEOUT_FACTOR;
	struct timeval tv = { 1, 0 };

	(void)fd;
	(void)what;
	if (s->proc == NULL)
		return;
	if (s->head != NULL && clock_ms() - s->head->sent_ms > limit) {
		snprintf(s->err, sizeof s->err, "treesync-remote: no answer "
		    "for %llu s: the session is hung\n",
		    (unsigned long long)(limit / 1000));
		proc_kill(s->proc, SIGKILL);
		return;
	}
	evtimer_add(s->watchdog, &tv);
}

int
remote_session_new(RemoteHost *h, const char *root, uint64_t dev,
    uint64_t ino, const RemoteSessionEvents *ev, RemoteSession **ret)
{
	RemoteSession *s = xcalloc(1, sizeof *s);
	char **argv = remote_ssh_argv(&h->rc, REMOTE_SSH_CLIENT);
	char *cmd = remote_ops_command(root, dev, ino);
	ProcSpec spec = { .want_stdin = true, .on_line = session_line,
	    .on_exit = session_exit, .arg = s };
	size_t n = 0;
	int r;

	while (argv[n] != NULL)
		n++;
	argv = xrealloc(argv, (n + 2) * sizeof *argv);
	argv[n] = cmd;
	argv[n + 1] = NULL;
	spec.argv = argv;
	s->host = h;
	s->ev = *ev;
	s->tail = &s->head;
	s->next_id = 1;
	s->watchdog = evtimer_new(h->base, on_watchdog, s);
	if (s->watchdog == NULL)
		xoom();
	r = proc_spawn(h->base, &spec, &s->proc);
	remote_argv_free(argv);
	if (r < 0) {
		event_free(s->watchdog);
		free(s);
		return r;
	}
	*ret = s;
	return 0;
}

bool
remote_session_ready(const RemoteSession *s)
{
	return s->ready && s->proc != NULL;
}

void
remote_session_send(RemoteSession *s, const char *verb,
    const char *const *args, size_t nargs, RemoteReplyFn fn, void *arg)
{
	static char line[REMOTE_PROTO_MAX_LINE];
	Pending *p;
	int len;

	if (s->proc == NULL) {
		fn(arg, -EHOSTDOWN, NULL);
		return;
	}
	len = remote_proto_format_request(line, sizeof line, s->next_id, verb,
	    args, nargs);
	if (len < 0) {
		fn(arg, EINVAL, NULL);
		return;
	}
	p = xcalloc(1, sizeof *p);
	p->id = s->next_id++;
	p->fn = fn;
	p->arg = arg;
	p->sent_ms = clock_ms();
	*s->tail = p;
	s->tail = &p->next;
	s->outstanding++;
	proc_write(s->proc, line, (size_t)len);
	if (!evtimer_pending(s->watchdog, NULL)) {
		struct timeval tv = { 1, 0 };

		evtimer_add(s->watchdog, &tv);
	}
}

size_t
remote_session_outstanding(const RemoteSession *s)
{
	return s->outstanding;
}

void
remote_session_free(RemoteSession *s)
{
	if (s == NULL)
		return;
	if (s->proc != NULL) {
		proc_close_stdin(s->proc);
		proc_free(s->proc);
		s->proc = NULL;
	}
	session_fail_all(s, -ECANCELED);
	event_free(s->watchdog);
	free(s);
}
