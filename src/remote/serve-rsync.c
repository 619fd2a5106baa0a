/*
 * serve-rsync — see include/remote/serve-rsync.h.
 *
 * rsync runs as a child rather than by exec so that its --temp-dir, which
 * treesync-remote made, is removed after it whatever happened: a transfer
 * cut off by the network leaves nothing behind, only a kill -9 of this
 * process (or a crash of the host) does, for the client's CLEAN. The
 * parent gives the child its stdin/stdout and closes its own copies, so
 * the connection sees EOF as soon as rsync is done.
 *
 * Making and removing the temp dir changes the destination root's mtime,
 * which rsync may already have set to the source's: the root's times are
 * put back to what rsync left (or, when nothing but our mkdir touched the
 * root during the run, to what they were before it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dest/remote-proto.h"
#include "remote/beneath.h"
#include "remote/fsops.h"
#include "remote/serve-rsync.h"

static volatile sig_atomic_t child_pid;

/* SIGTERM, SIGINT, SIGHUP while rsync runs: passed on, so it stops the
 * way it would have without us, and we still clean up after it. */
static void
forward(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

/* The run's temp dir: ours, a real directory, private. */
static int
make_temp_dir(int dest_fd, const char *name)
{
	struct stat st;

	if (mkdirat(dest_fd, name, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (fstatat(dest_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return -EEXIST;
	return 0;
}

static bool
timespec_equal(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int
wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return REMOTE_EXIT_EXEC;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return REMOTE_EXIT_EXEC;
}

int
serve_rsync(const ServeRsyncOptions *opt, const RsyncRequest *req, char *why,
    size_t why_size)
{
	struct sigaction sa = { .sa_handler = forward };
	struct stat before, after_mkdir, after_run;
	bool made_temp = false;
	int dest_fd, r, status;
	pid_t pid;

	dest_fd = beneath_open(opt->dir_fd, opt->dest, O_RDONLY | O_DIRECTORY);
	if (dest_fd < 0) {
		snprintf(why, why_size, "destination '%s': %s%s",
		    opt->dest_shown, strerror(-dest_fd),
		    dest_fd == -ELOOP ? " (a symlink on the way)" : "");
		return dest_fd == -ELOOP || dest_fd == -EXDEV ?
		    REMOTE_EXIT_REFUSED : REMOTE_EXIT_UNAVAILABLE;
	}
	if ((r = rootid_check(dest_fd, &opt->expect)) < 0) {
		snprintf(why, why_size, "destination '%s' is not the pinned "
		    "root %" PRIu64 ":%" PRIu64, opt->dest_shown,
		    opt->expect.dev, opt->expect.ino);
		status = REMOTE_EXIT_UNAVAILABLE;
		goto out;
	}
	if (fchdir(dest_fd) < 0) {
		snprintf(why, why_size, "destination '%s': %s",
		    opt->dest_shown, strerror(errno));
		status = REMOTE_EXIT_UNAVAILABLE;
		goto out;
	}
	/* Made for a dry run too: rsync refuses a --temp-dir that is not
	 * there even when it writes nothing. */
	if (req->temp_dir != NULL) {
		r = fstat(dest_fd, &before) < 0 ? -errno :
		    make_temp_dir(dest_fd, req->temp_dir);
		if (r == 0 && fstat(dest_fd, &after_mkdir) < 0)
			r = -errno;
		if (r < 0) {
			snprintf(why, why_size, "temp dir '%s' in '%s': %s",
			    req->temp_dir, opt->dest_shown, strerror(-r));
			status = REMOTE_EXIT_UNAVAILABLE;
			goto out;
		}
		made_temp = true;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		snprintf(why, why_size, "fork: %s", strerror(errno));
		status = REMOTE_EXIT_EXEC;
		goto out;
	}
	if (pid == 0) {
		execvp(opt->rsync, req->argv);
		dprintf(STDERR_FILENO, "treesync-remote: cannot run '%s': %s\n",
		    opt->rsync, strerror(errno));
		_exit(REMOTE_EXIT_EXEC);
	}
	child_pid = pid;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The connection is rsync's now. */
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	status = wait_child(pid);
	child_pid = 0;
	if (status == REMOTE_EXIT_EXEC)
		snprintf(why, why_size, "rsync could not be started");
out:
	if (made_temp) {
		uint64_t n = 0;
		int tr = fstat(dest_fd, &after_run);

		(void)fsops_delete_tree(dest_fd, req->temp_dir, &n);
		if (tr == 0) {
			const struct stat *t = timespec_equal(&after_run.st_mtim,
			    &after_mkdir.st_mtim) ? &before : &after_run;
			struct timespec times[2] = { t->st_atim, t->st_mtim };

			(void)futimens(dest_fd, times);
		}
	}
	close(dest_fd);
	return status;
}
