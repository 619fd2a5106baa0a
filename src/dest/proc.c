/*
 * proc — see include/dest/proc.h.
 *
 * The exit is told only once the child is reaped and both its pipes have
 * reached EOF, so every line it wrote is delivered before on_exit. A
 * grandchild that keeps a pipe open (it should not) would hold that back:
 * PIPE_GRACE_MS after the exit the pipes are closed anyway.
 *
 * fork() in a threaded process: between fork and exec the child calls
 * only async-signal-safe functions (dup2, close_range, sigprocmask,
 * sigaction, prctl, setpgid, unlink, execvp's execve; the argv was built
 * before).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "dest/proc.h"
#include "util/alloc.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define PIPE_GRACE_MS 2000
#define MAX_LINE (256 * 1024)	/* a longer line is cut there */

typedef struct ProcPipe {
	int fd;
	struct event *ev;
	struct evbuffer *buf;
} ProcPipe;

struct Proc {
	struct event_base *base;
	ProcSpec spec;
	pid_t pid;
	int pidfd;
	struct event *exit_ev;	/* pidfd readable; or the grace timer */
	struct event *grace;
	ProcPipe out, err, in;
	struct Proc *next_waiting;	/* without a pidfd: SIGCHLD's list */
	struct event *stall_ev;
	uint64_t io_seen;	/* rchar + wchar at the last look */
	unsigned quiet_looks;	/* looks in a row without I/O */
	bool stalled;		/* ended for it */
	bool stdin_close;	/* close stdin once in.buf is written */
	bool exited;
	int status;
	bool told;
};

static void pipe_close(ProcPipe *pp);

/* rchar + wchar of pid, or 0 when /proc cannot tell. */
static uint64_t
io_bytes(pid_t pid)
{
	char path[64], buf[512], *p;
	uint64_t sum = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if ((p = strstr(buf, "rchar: ")) != NULL)
		sum += strtoull(p + 7, NULL, 10);
	if ((p = strstr(buf, "wchar: ")) != NULL)
		sum += strtoull(p + 7, NULL, 10);
	return sum;
}

#define STALL_LOOKS 4	/* looks per stall_ms */

static void
on_stall_look(evutil_socket_t fd, short what, void *arg)
{
	Proc *p = arg;
	uint64_t io;

	(void)fd;
	(void)what;
	if (p->exited)
		return;
	io = io_bytes(p->pid);
	if (io == 0 || io != p->io_seen) {
		p->io_seen = io;
		p->quiet_looks = 0;
		return;
	}
	if (++p->quiet_looks >= STALL_LOOKS && !p->stalled) {
		p->stalled = true;
		kill(-p->pid, SIGTERM);
	} else if (p->stalled && p->quiet_looks >= 2 * STALL_LOOKS) {
		kill(-p->pid, SIGKILL);
	}
}

static void
finish_if_done(Proc *p)
{
	if (!p->exited || p->told)
		return;
	if (p->out.fd >= 0 || p->err.fd >= 0)
		return;
	p->told = true;
	if (p->spec.on_exit != NULL)
		p->spec.on_exit(p, p->status, p->spec.arg);
}

static void
deliver_lines(Proc *p, ProcPipe *pp, int which, bool eof)
{
	char *line;
	size_t len;

	while ((line = evbuffer_readln(pp->buf, &len, EVBUFFER_EOL_LF)) !=
	    NULL) {
		if (p->spec.on_line != NULL)
			p->spec.on_line(p, which, line, len, p->spec.arg);
		free(line);
	}
	len = evbuffer_get_length(pp->buf);
	if (len > 0 && (eof || len >= MAX_LINE)) {
		line = xmalloc(len + 1);
		evbuffer_remove(pp->buf, line, len);
		line[len] = '\0';
		if (p->spec.on_line != NULL)
			p->spec.on_line(p, which, line, len, p->spec.arg);
		free(line);
	}
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	Proc *p = arg;
	ProcPipe *pp = fd == p->out.fd ? &p->out : &p->err;
	int which = pp == &p->out ? 1 : 2;
	int n;

	(void)what;
	n = evbuffer_read(pp->buf, fd, 65536);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	deliver_lines(p, pp, which, n <= 0);
	if (n <= 0) {
		pipe_close(pp);
		finish_if_done(p);
	}
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	Proc *p = arg;

	(void)what;
	if (evbuffer_get_length(p->in.buf) > 0 &&
	    evbuffer_write(p->in.buf, fd) < 0 && errno != EAGAIN &&
	    errno != EINTR) {
		/* EPIPE: it stopped reading (exited); what is left is moot. */
		evbuffer_drain(p->in.buf, evbuffer_get_length(p->in.buf));
		pipe_close(&p->in);
		return;
	}
	if (evbuffer_get_length(p->in.buf) == 0) {
		if (p->stdin_close)
			pipe_close(&p->in);
		else
			event_del(p->in.ev);
	}
}

static void
pipe_close(ProcPipe *pp)
{
	if (pp->ev != NULL)
		event_free(pp->ev);
	pp->ev = NULL;
	if (pp->fd >= 0)
		close(pp->fd);
	pp->fd = -1;
	if (pp->buf != NULL)
		evbuffer_free(pp->buf);
	pp->buf = NULL;
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
	Proc *p = arg;

	(void)fd;
	(void)what;
	if (p->out.fd >= 0)
		deliver_lines(p, &p->out, 1, true);
	if (p->err.fd >= 0)
		deliver_lines(p, &p->err, 2, true);
	pipe_close(&p->out);
	pipe_close(&p->err);
	finish_if_done(p);
}

/*
 * Without pidfds (Linux < 5.3, or valgrind, which does not know the
 * call): SIGCHLD as a libevent signal event, and a look at each child
 * not reaped yet. The event is in place before the first fork, so no
 * exit is missed.
 */
static Proc *waiting;		/* reactor thread only */
static struct event *sigchld_ev;
static int have_pidfd = -1;	/* unknown yet */

static bool check_exit(Proc *p);

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	Proc *p = waiting;

	(void)sig;
	(void)what;
	(void)arg;
	/* An exit's callback may free other children: after each one,
	 * from the top again (the reaped are off the list). */
	while (p != NULL)
		p = check_exit(p) ? waiting : p->next_waiting;
}

static void
unlist(Proc *p)
{
	for (Proc **pp = &waiting; *pp != NULL; pp = &(*pp)->next_waiting)
		if (*pp == p) {
			*pp = p->next_waiting;
			return;
		}
}

static void
on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)check_exit(arg);
}

/* True when p was reaped now (and may be freed by its callback). */
static bool
check_exit(Proc *p)
{
	int st;
	pid_t r;

	r = waitpid(p->pid, &st, WNOHANG);
	if (r == 0 || (r < 0 && errno == EINTR))
		return false;
	p->exited = true;
	p->status = r < 0 ? 127 : WIFEXITED(st) ? WEXITSTATUS(st) :
	    WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 127;
	if (p->exit_ev != NULL)
		event_free(p->exit_ev);
	p->exit_ev = NULL;
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	unlist(p);
	/* Stdin is moot now. */
	pipe_close(&p->in);
	if (p->out.fd >= 0 || p->err.fd >= 0) {
		struct timeval tv = { PIPE_GRACE_MS / 1000,
		    (PIPE_GRACE_MS % 1000) * 1000 };

		p->grace = evtimer_new(p->base, on_grace, p);
		evtimer_add(p->grace, &tv);
	}
	finish_if_done(p);
	return true;
}

static int
make_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

/* The child's side: never returns. */
static void __attribute__((noreturn))
child(const ProcSpec *spec, int in, int out, int err)
{
	sigset_t all;
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(127);
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	if (spec->unlink_first != NULL)
		unlink(spec->unlink_first);
	if (spec->env != NULL)
		execvpe(spec->argv[0], spec->argv, spec->env);
	else
		execvp(spec->argv[0], spec->argv);
	_exit(127);
}

static void
pipe_watch(Proc *p, ProcPipe *pp, int fd, bool reading)
{
	pp->fd = fd;
	pp->buf = evbuffer_new();
	if (pp->buf == NULL)
		xoom();
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	pp->ev = event_new(p->base, fd, reading ? EV_READ | EV_PERSIST :
	    EV_WRITE | EV_PERSIST, reading ? on_readable : on_writable, p);
	if (pp->ev == NULL)
		xoom();
	if (reading)
		event_add(pp->ev, NULL);
}

int
proc_spawn(struct event_base *base, const ProcSpec *spec, Proc **ret)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	Proc *p = NULL;
	int r;

	if ((r = make_pipe(out)) < 0 || (r = make_pipe(err)) < 0)
		goto fail;
	if (spec->want_stdin)
		r = make_pipe(in);
	else if ((in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		r = -errno;
	if (r < 0)
		goto fail;
	if (have_pidfd < 0) {
		int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

		have_pidfd = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	if (!have_pidfd && sigchld_ev == NULL) {
		sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
		if (sigchld_ev == NULL || evsignal_add(sigchld_ev, NULL) < 0)
			xoom();
	}
	p = xcalloc(1, sizeof *p);
	p->base = base;
	p->spec = *spec;
	p->out.fd = p->err.fd = p->in.fd = p->pidfd = -1;
	p->pid = fork();
	if (p->pid < 0) {
		r = -errno;
		goto fail;
	}
	if (p->pid == 0)
		child(spec, in[0], out[1], err[1]);
	/* Ours too, so a kill before it ran setpgid still finds it. */
	setpgid(p->pid, p->pid);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->pidfd = have_pidfd ? (int)syscall(SYS_pidfd_open, p->pid, 0) : -1;
	if (p->pidfd >= 0) {
		p->exit_ev = event_new(base, p->pidfd, EV_READ | EV_PERSIST,
		    on_exit_ev, p);
		if (p->exit_ev == NULL)
			xoom();
		event_add(p->exit_ev, NULL);
	} else {
		p->next_waiting = waiting;
		waiting = p;
		if (sigchld_ev == NULL) {
			sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld,
			    NULL);
			if (sigchld_ev == NULL ||
			    evsignal_add(sigchld_ev, NULL) < 0)
				xoom();
		}
	}
	pipe_watch(p, &p->out, out[0], true);
	pipe_watch(p, &p->err, err[0], true);
	if (spec->want_stdin)
		pipe_watch(p, &p->in, in[1], false);
	if (spec->stall_ms > 0) {
		struct timeval tv = { spec->stall_ms / STALL_LOOKS / 1000,
		    (spec->stall_ms / STALL_LOOKS % 1000) * 1000 };

		p->stall_ev = event_new(base, -1, EV_PERSIST, on_stall_look, p);
		if (p->stall_ev == NULL)
			xoom();
		event_add(p->stall_ev, &tv);
	}
	if (p->pidfd < 0)
		(void)check_exit(p);	/* gone already? (told once its pipes
					 * end) */
	*ret = p;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	free(p);
	return r;
}

void
proc_write(Proc *p, const void *data, size_t len)
{
	if (p->in.fd < 0 || len == 0)
		return;
	evbuffer_add(p->in.buf, data, len);
	event_add(p->in.ev, NULL);
}

void
proc_close_stdin(Proc *p)
{
	if (p->in.fd < 0)
		return;
	p->stdin_close = true;
	if (evbuffer_get_length(p->in.buf) == 0)
		pipe_close(&p->in);
	else
		event_add(p->in.ev, NULL);
}

size_t
proc_stdin_pending(const Proc *p)
{
	return p->in.buf != NULL ? evbuffer_get_length(p->in.buf) : 0;
}

void
proc_kill(Proc *p, int sig)
{
	if (!p->exited)
		kill(-p->pid, sig);
}

pid_t
proc_pid(const Proc *p)
{
	return p->pid;
}

bool
proc_running(const Proc *p)
{
	return !p->exited;
}

void
proc_free(Proc *p)
{
	if (p == NULL)
		return;
	if (!p->exited) {
		/* Still running: killed and reaped here. A SIGKILLed child
		 * is gone at once (stopped ones too), so this does not keep
		 * the reactor waiting, and nothing is left to reap later. */
		int st;

		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	unlist(p);
	if (waiting == NULL && sigchld_ev != NULL) {
		/* The last child: SIGCHLD goes back to its default. */
		event_free(sigchld_ev);
		sigchld_ev = NULL;
	}
	if (p->stall_ev != NULL)
		event_free(p->stall_ev);
	if (p->grace != NULL)
		event_free(p->grace);
	if (p->exit_ev != NULL)
		event_free(p->exit_ev);
	if (p->pidfd >= 0)
		close(p->pidfd);
	pipe_close(&p->in);
	pipe_close(&p->out);
	pipe_close(&p->err);
	free(p);
}
