/*
 * proc — a child process (ssh, rsync) as reactor events: it is started
 * with pipes, its stdout and stderr arrive line by line as events, its
 * stdin is fed from a buffer as the pipe takes it, and its exit is an
 * event too (a pidfd in the event base), so the reactor never waits on
 * a child or its pipes.
 *
 * Each child gets its own process group (proc_kill signals the group: an
 * rsync and the ssh it runs), a clean signal mask and dispositions, no
 * descriptor of ours but its three pipes, and PR_SET_PDEATHSIG SIGKILL:
 * a daemon killed with -9 takes its children along, so a transfer never
 * goes on unsupervised.
 *
 * Ownership: the caller owns a Proc and frees it with proc_free, at any
 * time (a running child is then killed with SIGKILL and reaped at once;
 * no callback runs after proc_free). Reactor thread only.
 */
#ifndef TREESYNC_PROC_H
#define TREESYNC_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct event_base;
typedef struct Proc Proc;

/* One line of stdout (fd 1) or stderr (fd 2), without its '\n'; a last
 * line without one is delivered at EOF. */
typedef void (*ProcLineFn)(Proc *p, int fd, char *line, size_t len,
    void *arg);
/* The child is gone and both pipes are drained: status is its exit code,
 * or 128 + the signal that ended it. */
typedef void (*ProcExitFn)(Proc *p, int status, void *arg);

typedef struct ProcSpec {
	char *const *argv;	/* argv[0] is looked up in PATH */
	char *const *env;	/* NULL: ours */
	bool want_stdin;	/* a pipe (proc_write); else /dev/null */
	const char *unlink_first;	/* removed by the child before it
				 * runs (a stale socket path), or NULL */
	unsigned stall_ms;	/* 0, or: ended (SIGTERM to its group)
				 * when the child reads and writes nothing
				 * for this long (/proc/PID/io), so a run
				 * whose other end hangs where rsync's own
				 * --timeout does not look is not stuck */
	ProcLineFn on_line;	/* NULL: output is dropped */
	ProcExitFn on_exit;
	void *arg;
} ProcSpec;

/* Starts the child. 0 and *ret, or -errno (nothing started). */
int proc_spawn(struct event_base *base, const ProcSpec *spec, Proc **ret);
/* Queues bytes for its stdin (written as the pipe takes them). */
void proc_write(Proc *p, const void *data, size_t len);
/* Closes its stdin once what is queued is written. */
void proc_close_stdin(Proc *p);
/* Bytes queued for stdin and not written yet. */
size_t proc_stdin_pending(const Proc *p);
/* Signals its process group (nothing once it has exited). */
void proc_kill(Proc *p, int sig);
pid_t proc_pid(const Proc *p);
bool proc_running(const Proc *p);
/* NULL is fine. */
void proc_free(Proc *p);

#endif
