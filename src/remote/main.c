/*
 * treesync-remote — the forced command of treesyncd's key on a remote
 * host:
 *
 *     restrict,command="treesync-remote /srv/site" ssh-ed25519 AAAA...
 *
 * Reads the command the client asked for from SSH_ORIGINAL_COMMAND and
 * serves it, confined beneath DIR (sandbox.c): an `rsync --server`
 * receiver on the allowlist (rsync-allow.c), or an ops session
 * (session.c, protocol in include/dest/remote-proto.h). Anything else is
 * refused with one line on stderr (and syslog) and exit 77. Exit codes:
 * include/dest/remote-proto.h, man/treesync-remote.8.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "dest/remote-proto.h"
#include "remote/beneath.h"
#include "remote/cmdline.h"
#include "remote/rootid.h"
#include "remote/rsync-allow.h"
#include "remote/sandbox.h"
#include "remote/serve-rsync.h"
#include "remote/session.h"

#ifndef TREESYNC_VERSION
#define TREESYNC_VERSION "unknown"
#endif

static const char *original_command = "";

static void
usage(FILE *f)
{
	fprintf(f, "usage: treesync-remote [--sandbox=auto|mountns|landlock|"
	    "none] [--rsync=PROGRAM] DIR\n"
	    "A forced command for treesyncd's key in authorized_keys:\n"
	    "  restrict,command=\"treesync-remote /srv/site\" ssh-ed25519 ...\n"
	    "See treesync-remote(8).\n");
}

/* One line on stderr (the client logs it) and one in the auth log. */
static int
finish(int status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
finish(int status, const char *kind, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "treesync-remote: %s%s\n", kind, msg);
	syslog(status == REMOTE_EXIT_REFUSED ? LOG_WARNING : LOG_ERR,
	    "%s%s (command: %.200s)", kind, msg, original_command);
	return status;
}

static int
run_rsync(const char *dir, SandboxMode mode, const char *rsync,
    char *const *words, size_t n, const RootId *expect)
{
	ServeRsyncOptions opt = { .rsync = rsync, .expect = *expect };
	RsyncRequest req;
	char why[1024], rel[4096];
	const char *used;
	int r, status;

	if ((r = rsync_allow_check(words, n, &req, why, sizeof why)) < 0)
		return r == -ENOMEM ?
		    finish(REMOTE_EXIT_UNAVAILABLE, "", "out of memory") :
		    finish(REMOTE_EXIT_REFUSED, "refused: ", "%s", why);
	if ((r = beneath_relative_dest(dir, req.dest, rel, sizeof rel)) < 0) {
		status = finish(REMOTE_EXIT_REFUSED, "refused: ", "destination "
		    "'%s' is not beneath %s", req.dest, dir);
		goto out;
	}
	if ((r = sandbox_enter(mode, dir, &opt.dir_fd, &used, why,
	    sizeof why)) < 0) {
		status = finish(REMOTE_EXIT_UNAVAILABLE, "", "%s", why);
		goto out;
	}
	opt.dest = rel;
	opt.dest_shown = req.dest;
	why[0] = '\0';
	status = serve_rsync(&opt, &req, why, sizeof why);
	if (why[0] != '\0')
		status = finish(status, status == REMOTE_EXIT_REFUSED ?
		    "refused: " : "", "%s", why);
	close(opt.dir_fd);
out:
	rsync_request_free(&req);
	return status;
}

static int
run_ops(const char *dir, SandboxMode mode, char *const *words, size_t n,
    const RootId *expect)
{
	SessionOptions opt = { .expect = *expect, .in = STDIN_FILENO,
	    .out = STDOUT_FILENO };
	const char *root = n > 1 ? words[1] : dir;
	char why[1024], rel[4096];
	int status;

	if (n > 2)
		return finish(REMOTE_EXIT_REFUSED, "refused: ", "'ops' takes at "
		    "most one path");
	if (beneath_relative_dest(dir, root, rel, sizeof rel) < 0)
		return finish(REMOTE_EXIT_REFUSED, "refused: ", "destination "
		    "'%s' is not beneath %s", root, dir);
	if (sandbox_enter(mode, dir, &opt.dir_fd, &opt.sandbox, why,
	    sizeof why) < 0)
		return finish(REMOTE_EXIT_UNAVAILABLE, "", "%s", why);
	opt.root = rel;
	opt.root_shown = root;
	why[0] = '\0';
	status = session_run(&opt, why, sizeof why);
	if (why[0] != '\0')
		status = finish(status, "", "%s", why);
	close(opt.dir_fd);
	return status;
}

/* "treesync-remote [--root-id=DEV:INO] (rsync ... | ops [PATH])" */
static int
run_request(const char *dir, SandboxMode mode, const char *rsync,
    char *const *w, size_t n)
{
	RootId expect = { 0 };
	size_t i = 0;

	if (strcmp(w[0], "treesync-remote") == 0) {
		for (i = 1; i < n && strncmp(w[i], "--", 2) == 0; i++) {
			if (strncmp(w[i], "--root-id=", 10) != 0 ||
			    rootid_parse(w[i] + 10, &expect) < 0)
				return finish(REMOTE_EXIT_REFUSED, "refused: ",
				    "'%s' is not allowed", w[i]);
		}
		if (i == n)
			return finish(REMOTE_EXIT_REFUSED, "refused: ",
			    "'treesync-remote' without 'rsync' or 'ops'");
		if (strcmp(w[i], "ops") == 0)
			return run_ops(dir, mode, w + i, n - i, &expect);
		if (strcmp(w[i], "rsync") != 0)
			return finish(REMOTE_EXIT_REFUSED, "refused: ",
			    "'%s' is not allowed", w[i]);
	}
	if (strcmp(w[i], "rsync") == 0)
		return run_rsync(dir, mode, rsync, w + i, n - i, &expect);
	return finish(REMOTE_EXIT_REFUSED, "refused: ", "'%s' is not "
	    "allowed: this key runs treesync-remote only (rsync --server as a "
	    "receiver, or ops)", w[0]);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "sandbox", required_argument, NULL, 's' },
		{ "rsync", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	SandboxMode mode = SANDBOX_AUTO;
	const char *rsync = "rsync", *dir, *command;
	CmdLine cl;
	size_t bad = 0;
	int c, r, status;

	openlog("treesync-remote", LOG_PID, LOG_AUTHPRIV);
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (sandbox_parse_mode(optarg, &mode) < 0)
				return finish(REMOTE_EXIT_CONFIG, "",
				    "--sandbox: '%s' is not auto, mountns, "
				    "landlock or none", optarg);
			break;
		case 'r':
			rsync = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("treesync-remote %s (protocol %d)\n",
			    TREESYNC_VERSION, REMOTE_PROTO_VERSION);
			return 0;
		default:
			usage(stderr);
			return REMOTE_EXIT_CONFIG;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return REMOTE_EXIT_CONFIG;
	}
	dir = argv[optind];
	if (dir[0] != '/')
		return finish(REMOTE_EXIT_CONFIG, "", "DIR '%s' is not an "
		    "absolute path", dir);
	command = getenv("SSH_ORIGINAL_COMMAND");
	if (command == NULL)
		return finish(REMOTE_EXIT_REFUSED, "refused: ", "no command "
		    "(SSH_ORIGINAL_COMMAND is not set): this key runs "
		    "treesync-remote only, no login");
	original_command = command;
	if ((r = cmdline_split(command, &cl, &bad)) < 0) {
		if (r == -ENOMEM)
			return finish(REMOTE_EXIT_UNAVAILABLE, "",
			    "out of memory");
		if (command[strspn(command, " \t")] == '\0')
			return finish(REMOTE_EXIT_REFUSED, "refused: ",
			    "an empty command");
		if (command[bad] == '\\')
			return finish(REMOTE_EXIT_REFUSED, "refused: ",
			    "a backslash at the end of the command");
		return finish(REMOTE_EXIT_REFUSED, "refused: ", "unquoted "
		    "'%c' at byte %zu of the command", command[bad], bad);
	}
	status = run_request(dir, mode, rsync, cl.word, cl.n);
	cmdline_free(&cl);
	return status;
}
