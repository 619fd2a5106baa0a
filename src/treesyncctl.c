/*
 * treesyncctl — talks to a running treesyncd over its control socket:
 * one request line out, the answer ("OK" or "ERR", then a body) in.
 *
 * The socket is -s PATH, else the control_socket of the config (-c FILE,
 * default /etc/treesync/treesync.conf; a missing default file is not an
 * error), else /run/treesync/control.sock. Exit: 0 ok; 1 the daemon
 * refused or failed, or cannot be reached; 2 usage. diff: 0 when the
 * answer lists nothing (every destination matches), 1 when it does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libconfig.h>

#include "service/config.h"
#include "service/control_parse.h"

#ifndef TREESYNC_VERSION
#define TREESYNC_VERSION "unknown"
#endif

#define ANSWER_TIMEOUT_S 60
/* A diff compares whole trees (hashing them with compare = "hash"): the
 * daemon answers when it is done, or drops us when it stops. */
#define DIFF_TIMEOUT_S 0

static const char usage_text[] =
"Usage: treesyncctl [-s SOCKET] [-c CONFIG] COMMAND [ARGS]\n"
"Talks to a running treesyncd over its control socket.\n"
"\n"
"Commands:\n"
"  status [--json]        per sync pair: state, queue, files and bytes synced,\n"
"                         errors and the last one, last full compare, watches\n"
"  resync [--force] NAME  compare and repair every destination of NAME now\n"
"                         (--force: the next pass may delete past max_delete)\n"
"  pause NAME             stop propagating NAME's changes (they are recorded)\n"
"  resume NAME            propagate again, catching up\n"
"  reload                 re-read the config (as SIGHUP); says whether it was\n"
"                         valid and, if not, each FILE:LINE problem\n"
"  metrics                counters in the Prometheus text format\n"
"  diff NAME              what a full sync of NAME would copy, change and\n"
"                         delete, one itemized line per entry (as\n"
"                         treesyncd --once --dry-run); changes nothing\n"
"\n"
"Options:\n"
"  -s, --socket PATH   control socket (default: control_socket of CONFIG,\n"
"                      else " CONFIG_DEFAULT_SOCKET ")\n"
"  -c, --config FILE   config to read control_socket from\n"
"                      (default " CONFIG_DEFAULT_PATH ")\n"
"  -h, --help          this text\n"
"  -V, --version       the version\n"
"\n"
"Exit status: 0 ok; 1 the daemon refused or failed the request, or it is\n"
"not running; 2 usage error. diff: 0 when every destination matches its\n"
"source, 1 when a full sync would change something.\n";

static int
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "treesyncctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'treesyncctl --help'.\n");
	return 2;
}

/*
 * The socket path from the config file into *out (malloc'd; NULL when the
 * file does not set it). 0, or -1 after a message (unreadable file).
 */
static int
socket_from_config(const char *path, bool explicit, char **out)
{
	config_t cf;
	const char *s = NULL;
	int r = 0;

	*out = NULL;
	if (!explicit && access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	config_init(&cf);
	if (config_read_file(&cf, path) != CONFIG_TRUE) {
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			fprintf(stderr, "treesyncctl: cannot read %s: %s\n",
			    path, strerror(errno));
		else
			fprintf(stderr, "treesyncctl: %s:%d: %s\n",
			    config_error_file(&cf) ? config_error_file(&cf) :
			    path, config_error_line(&cf),
			    config_error_text(&cf));
		r = -1;
	} else if (config_lookup_string(&cf, "control_socket", &s) ==
	    CONFIG_TRUE && (*out = strdup(s)) == NULL) {
		r = -1;
	}
	config_destroy(&cf);
	return r;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Why connect failed, said so that the operator can act: a permission
 * error names who may use the socket; a missing or refused socket asks
 * whether the daemon runs.
 */
static void
connect_error(const char *sock, int e)
{
	char owner[64], group[64], *dir;
	struct passwd *pw;
	struct group *gr;
	struct stat st;

	if (e != EACCES && e != EPERM) {
		fprintf(stderr, "treesyncctl: cannot connect to %s: %s — is "
		    "treesyncd running?\n", sock, strerror(e));
		return;
	}
	if (stat(sock, &st) < 0) {
		dir = strdup(sock);
		if (dir != NULL && strrchr(dir, '/') != NULL)
			*strrchr(dir, '/') = '\0';
		fprintf(stderr, "treesyncctl: cannot connect to %s: %s: a "
		    "directory on the way to it (under '%s') is not searchable "
		    "for this user\n", sock, strerror(e), dir ? dir : sock);
		free(dir);
		return;
	}
	if ((pw = getpwuid(st.st_uid)) != NULL)
		snprintf(owner, sizeof owner, "%s", pw->pw_name);
	else
		snprintf(owner, sizeof owner, "%u", (unsigned)st.st_uid);
	if ((gr = getgrgid(st.st_gid)) != NULL)
		snprintf(group, sizeof group, "%s", gr->gr_name);
	else
		snprintf(group, sizeof group, "%u", (unsigned)st.st_gid);
	fprintf(stderr, "treesyncctl: cannot connect to %s: %s: the socket is "
	    "owned by %s:%s with mode %04o; run treesyncctl as %s or as a "
	    "member of group %s\n", sock, strerror(e), owner, group,
	    (unsigned)(st.st_mode & 07777), owner, group);
}

/*
 * Sends line, prints the answer's body; returns the exit status (with
 * body_is_news, as diff: 1 for an OK answer that says anything).
 */
static int
request(const char *sock, const char *line, bool body_is_news)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { body_is_news ? DIFF_TIMEOUT_S : ANSWER_TIMEOUT_S,
	    0 };
	bool said = false;
	char buf[65536];
	size_t have = 0;
	bool head_done = false, ok = false;
	FILE *body_out = stdout;
	int fd, r, status = 1;

	if (strlen(sock) >= sizeof sa.sun_path) {
		fprintf(stderr, "treesyncctl: %s: socket path too long\n", sock);
		return 1;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "treesyncctl: socket: %s\n", strerror(errno));
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		connect_error(sock, errno);
		goto out;
	}
	if ((r = write_all(fd, line, strlen(line))) < 0) {
		fprintf(stderr, "treesyncctl: %s: cannot send the request: "
		    "%s\n", sock, strerror(-r));
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "treesyncctl: %s: %s\n", sock,
			    errno == EAGAIN ? "no answer in time" :
			    strerror(errno));
			goto out;
		}
		have += (size_t)n;
		if (!head_done) {
			char *nl = memchr(buf, '\n', have);
			if (nl == NULL && n > 0 && have < sizeof buf - 1)
				continue;
			if (nl == NULL || ((size_t)(nl - buf) != 2 &&
			    (size_t)(nl - buf) != 3)) {
				fprintf(stderr, "treesyncctl: %s: the daemon "
				    "closed the connection without an "
				    "answer\n", sock);
				goto out;
			}
			ok = strncmp(buf, "OK\n", 3) == 0;
			if (!ok && strncmp(buf, "ERR\n", 4) != 0) {
				fprintf(stderr, "treesyncctl: %s: not an "
				    "answer of treesyncd\n", sock);
				goto out;
			}
			head_done = true;
			if (!ok) {
				body_out = stderr;
				fputs("treesyncctl: ", stderr);
			}
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have);
		}
		fwrite(buf, 1, have, body_out);
		said |= have > 0;
		have = 0;
		if (n == 0)
			break;
	}
	status = ok && !(body_is_news && said) ? 0 : 1;
	/* A closed pipe (treesyncctl metrics | head) is the reader's choice. */
	if (fflush(stdout) != 0 && errno != EPIPE) {
		fprintf(stderr, "treesyncctl: writing the answer: %s\n",
		    strerror(errno));
		status = 1;
	}
out:
	close(fd);
	return status;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *config = NULL;
	char *from_config = NULL;
	char line[CONTROL_LINE_MAX + 2];
	size_t len = 0;
	ControlRequest req;
	int c, status;

	/* "+": options after the command belong to it (status --json). */
	while ((c = getopt_long(argc, argv, "+s:c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("treesyncctl %s\n", TREESYNC_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'treesyncctl --help'.\n");
			return 2;
		}
	}
	if (optind >= argc)
		return usage_error("%s", "missing command");
	/* The request is the rest of the line; the parser the daemon uses
	 * tells a usage error before anything is sent. */
	for (int i = optind; i < argc; i++) {
		size_t n = strlen(argv[i]);
		if (len + n + 2 > sizeof line - 1)
			return usage_error("%s", "command line too long");
		if (i > optind)
			line[len++] = ' ';
		memcpy(line + len, argv[i], n);
		len += n;
	}
	line[len++] = '\n';
	line[len] = '\0';
	if (control_parse(line, len, &req) < 0) {
		line[len - 1] = '\0';
		fprintf(stderr, "treesyncctl: '%s': %s\n", line, req.error);
		fprintf(stderr, "Try 'treesyncctl --help'.\n");
		return 2;
	}
	if (sock == NULL) {
		if (socket_from_config(config ? config : CONFIG_DEFAULT_PATH,
		    config != NULL, &from_config) < 0)
			return 1;
		sock = from_config ? from_config : CONFIG_DEFAULT_SOCKET;
	}
	/* A daemon that hangs up early is an error message, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	status = request(sock, line, req.command == CONTROL_DIFF);
	free(from_config);
	return status;
}
