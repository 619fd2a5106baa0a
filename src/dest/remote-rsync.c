/*
 * remote-rsync — see include/dest/remote-rsync.h.
 *
 * Exit statuses (rsync(1) EXIT VALUES, ssh(1)), as remote_classify sorts
 * them:
 *   0, 24 (vanished source files), 25 (--max-delete stopped deletions:
 *          the caller counts what was withheld)                 done
 *   23 (some files/attrs not transferred)                       partial
 *   255 (ssh: no connection, or it broke), 12 (protocol stream:
 *          the connection went), 10 (socket I/O), 30 and 35 (timeouts),
 *          20 (signalled: a hung run we ended)                  away
 *   the same with "Host key verification failed" / "Permission
 *          denied (publickey" on stderr             host key / auth
 *   stderr naming treesync-remote's "is not the pinned root"   root changed
 *   everything else (11 file I/O such as a full disk, 1-6, 13, 14, 21,
 *          22, treesync-remote's 65-78 seen as 12 with its line)  failed
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest/remote-proto.h"
#include "dest/remote-rsync.h"
#include "util/alloc.h"

typedef struct Argv {
	char **v;
	size_t n, cap;
} Argv;

static void __attribute__((format(printf, 2, 3)))
add(Argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		xoom();
	va_end(ap);
	xgrow(&a->v, &a->cap, a->n + 2, sizeof *a->v, 32);
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

void
remote_argv_free(char **argv)
{
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* ssh's options without the host: -F /dev/null first, then everything
 * from rc (ssh takes the first value of an option it is given). */
static void
ssh_options(Argv *a, const RemoteConfig *rc, RemoteSshRole role)
{
	int alive = rc->timeout_s / 3 > 0 ? rc->timeout_s / 3 : 1;

	add(a, "ssh");
	add(a, "-F");
	add(a, "/dev/null");
	add(a, "-o");
	add(a, "BatchMode=yes");
	add(a, "-o");
	add(a, "IdentitiesOnly=yes");
	add(a, "-o");
	add(a, "IdentityFile=%s", rc->identity);
	add(a, "-o");
	add(a, "StrictHostKeyChecking=yes");
	add(a, "-o");
	add(a, "UserKnownHostsFile=%s", rc->known_hosts);
	add(a, "-o");
	add(a, "GlobalKnownHostsFile=/dev/null");
	add(a, "-o");
	add(a, "CheckHostIP=no");
	add(a, "-o");
	add(a, "UpdateHostKeys=no");
	add(a, "-o");
	add(a, "ServerAliveInterval=%d", alive);
	add(a, "-o");
	add(a, "ServerAliveCountMax=3");
	add(a, "-o");
	add(a, "ConnectTimeout=%d", rc->timeout_s);
	add(a, "-o");
	add(a, "ControlPath=%s", rc->control_path);
	add(a, "-o");
	if (role == REMOTE_SSH_MASTER) {
		/*
		 * The daemon owns the master as a child (it knows at once
		 * when the connection is gone, and a kill -9 takes it
		 * along): it stays up as long as treesyncd wants it, so
		 * it needs no ControlPersist of its own.
		 */
		add(a, "ControlMaster=yes");
		add(a, "-o");
		add(a, "ControlPersist=no");
		add(a, "-o");
		add(a, "PermitLocalCommand=yes");
		add(a, "-o");
		add(a, "LocalCommand=echo " REMOTE_SSH_UP_LINE);
		add(a, "-N");
	} else {
		add(a, "ControlMaster=no");
	}
	add(a, "-o");
	add(a, "LogLevel=ERROR");
	add(a, "-p");
	add(a, "%d", rc->port);
	if (rc->user != NULL) {
		add(a, "-l");
		add(a, "%s", rc->user);
	}
}

char **
remote_ssh_argv(const RemoteConfig *rc, RemoteSshRole role)
{
	Argv a = { 0 };

	ssh_options(&a, rc, role);
	add(&a, "%s", rc->host);
	return a.v;
}

/* One word for rsync's -e splitting: quoted when it holds a blank or a
 * quote (rsync reads "" inside "..." as one "). */
static void
append_rsh_word(char **out, size_t *len, size_t *cap, const char *w)
{
	bool quote = w[0] == '\0' || strpbrk(w, " \t'\"") != NULL;
	size_t need = *len + 2 * strlen(w) + 4;

	xgrow(out, cap, need, 1, 256);
	if (*len > 0)
		(*out)[(*len)++] = ' ';
	if (quote)
		(*out)[(*len)++] = '"';
	for (; *w != '\0'; w++) {
		if (quote && *w == '"')
			(*out)[(*len)++] = '"';
		(*out)[(*len)++] = *w;
	}
	if (quote)
		(*out)[(*len)++] = '"';
	(*out)[*len] = '\0';
}

char *
remote_ssh_command(const RemoteConfig *rc)
{
	Argv a = { 0 };
	char *out = NULL;
	size_t len = 0, cap = 0;

	ssh_options(&a, rc, REMOTE_SSH_CLIENT);
	for (size_t i = 0; i < a.n; i++)
		append_rsh_word(&out, &len, &cap, a.v[i]);
	remote_argv_free(a.v);
	return out;
}

/* A word for treesync-remote's command-line split (cmdline.c): every
 * byte but the plainest ones behind a backslash. */
static void
append_escaped(char **out, size_t *len, size_t *cap, const char *w)
{
	xgrow(out, cap, *len + 2 * strlen(w) + 2, 1, 256);
	for (; *w != '\0'; w++) {
		if (!isalnum((unsigned char)*w) && strchr("/._-+,=:@%", *w) ==
		    NULL)
			(*out)[(*len)++] = '\\';
		(*out)[(*len)++] = *w;
	}
	(*out)[*len] = '\0';
}

char *
remote_ops_command(const char *root, uint64_t dev, uint64_t ino)
{
	char *out = NULL, head[96];
	size_t len = 0, cap = 0;

	if (dev != 0 || ino != 0)
		snprintf(head, sizeof head, "treesync-remote --root-id=%" PRIu64
		    ":%" PRIu64 " ops", dev, ino);
	else
		snprintf(head, sizeof head, "treesync-remote ops");
	append_escaped(&out, &len, &cap, "");
	xgrow(&out, &cap, strlen(head) + 2, 1, 256);
	memcpy(out, head, strlen(head) + 1);
	len = strlen(head);
	if (root[0] != '\0') {
		out[len++] = ' ';
		out[len] = '\0';
		append_escaped(&out, &len, &cap, root);
	}
	return out;
}

char **
remote_rsync_argv(const RemoteRunSpec *s)
{
	const RemoteConfig *rc = s->remote;
	bool v6 = strchr(rc->host, ':') != NULL;
	Argv a = { 0 };
	char *rsh;

	add(&a, "rsync");
	/* -a is -rlptgoD; with --files-from it does not recurse. */
	add(&a, "-aHAX");
	add(&a, "-@-1");
	add(&a, "--numeric-ids");
	if (s->checksum)
		add(&a, "--checksum");
	if (s->dry_run)
		add(&a, "--dry-run");
	if (s->files_from) {
		add(&a, "--from0");
		add(&a, "--files-from=-");
		if (s->recursive)
			add(&a, "--recursive");
	}
	if (!s->implied_dirs)
		add(&a, "--no-implied-dirs");
	if (s->delete) {
		add(&a, "--delete");
		if (s->files_from)
			add(&a, "--delete-missing-args");
	} else if (s->files_from) {
		/* A name that left the source stays (delete = false). */
		add(&a, "--ignore-missing-args");
	}
	if (s->max_delete >= 0)
		add(&a, "--max-delete=%lld", s->max_delete);
	add(&a, "--timeout=%d", rc->timeout_s);
	if (rc->bwlimit_kib > 0)
		add(&a, "--bwlimit=%llu", rc->bwlimit_kib);
	add(&a, "--partial-dir=" REMOTE_PROTO_PARTIAL_DIR);
	add(&a, "--temp-dir=%s", s->temp_dir);
	/* Temporaries first: a --delete run must never take them. */
	add(&a, "--filter=-p " REMOTE_PROTO_TEMP_PREFIX "*");
	for (size_t i = 0; s->filters != NULL && s->filters[i] != NULL; i++)
		if (strcmp(s->filters[i], "-p " REMOTE_PROTO_TEMP_PREFIX "*") !=
		    0)
			add(&a, "--filter=%s", s->filters[i]);
	add(&a, "--out-format=%%i %%n");
	if (s->stats)
		add(&a, "--stats");
	rsh = remote_ssh_command(rc);
	add(&a, "--rsh=%s", rsh);
	free(rsh);
	if (s->root_dev != 0 || s->root_ino != 0)
		add(&a, "--rsync-path=treesync-remote --root-id=%" PRIu64 ":%"
		    PRIu64 " rsync", s->root_dev, s->root_ino);
	else
		add(&a, "--rsync-path=treesync-remote rsync");
	add(&a, "%s/", s->source);
	add(&a, "%s%s%s:%s/", v6 ? "[" : "", rc->host, v6 ? "]" : "", s->root);
	return a.v;
}

/* rsync's "\#ooo" escapes of unprintable bytes, undone in place. */
static void
unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r != '\0'; r++) {
		if (r[0] == '\\' && r[1] == '#' && r[2] >= '0' && r[2] <= '3' &&
		    r[3] >= '0' && r[3] <= '7' && r[4] >= '0' && r[4] <= '7') {
			*w++ = (char)((r[2] - '0') * 64 + (r[3] - '0') * 8 +
			    (r[4] - '0'));
			r += 4;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static RuleAction
action_of_item(const char *i)
{
	if (i[0] == 'h')
		return RULE_HARDLINK;
	if (i[0] == 'c' && i[1] == 'd')
		return RULE_MKDIR;
	if (i[0] == 'c' && i[1] == 'L')
		return RULE_SYMLINK;
	if (i[0] == '>' || i[0] == '<' || i[0] == 'c')
		return RULE_COPY;
	/* '.': attributes only, when any changed. */
	for (int k = 2; k < 11; k++)
		if (i[k] != '.' && i[k] != ' ')
			return RULE_ATTRS;
	return RULE_NONE;
}

bool
remote_parse_item(char *line, RuleAction *action, char **name)
{
	size_t len = strlen(line), n;
	char *nm;

	if (strncmp(line, "*deleting ", 10) == 0) {
		*action = RULE_DELETE;
		nm = line + 10;
		while (*nm == ' ')
			nm++;
	} else {
		if (len < 13 || line[11] != ' ' ||
		    strchr("<>ch.", line[0]) == NULL ||
		    strchr("fdLDS", line[1]) == NULL)
			return false;
		*action = action_of_item(line);
		nm = line + 12;
	}
	unescape(nm);
	n = strlen(nm);
	if (n > 1 && nm[n - 1] == '/')
		nm[--n] = '\0';
	if (strcmp(nm, ".") == 0 || strcmp(nm, "./") == 0)
		nm[0] = '\0';
	*name = nm;
	return true;
}

/* The number after prefix in line, commas dropped ("1,234"). */
static bool
number_after(const char *line, const char *prefix, uint64_t *out)
{
	size_t n = strlen(prefix);
	uint64_t v = 0;
	const char *p;

	if (strncmp(line, prefix, n) != 0)
		return false;
	for (p = line + n; *p == ' '; p++)
		;
	if (*p < '0' || *p > '9')
		return false;
	for (; (*p >= '0' && *p <= '9') || *p == ','; p++)
		if (*p != ',')
			v = v * 10 + (uint64_t)(*p - '0');
	*out = v;
	return true;
}

bool
remote_parse_stats_line(const char *line, SyncStats *st)
{
	uint64_t v;

	if (number_after(line, "Number of files:", &v)) {
		st->entries_seen += v;
	} else if (number_after(line, "Number of regular files transferred:",
	    &v)) {
		st->files_copied += v;
	} else if (number_after(line, "Number of deleted files:", &v)) {
		st->deleted += v;
	} else if (number_after(line, "Total transferred file size:", &v)) {
		st->bytes_copied += v;
	} else if (number_after(line, "Total file size:", &v)) {
		st->bytes_seen += v;
	} else if (strstr(line, "Deletions stopped due to --max-delete") !=
	    NULL) {
		/* "Deletions stopped due to --max-delete limit (N skipped)" */
		const char *p = strrchr(line, '(');

		st->withheld += p != NULL ? strtoull(p + 1, NULL, 10) : 1;
	} else {
		return false;
	}
	return true;
}

int
remote_error_errno(const char *line)
{
	const char *open = strrchr(line, '(');
	char *end;
	long e;

	if (open == NULL)
		return 0;
	e = strtol(open + 1, &end, 10);
	return *end == ')' && e > 0 && e < 4096 ? (int)e : 0;
}

const char *
remote_fault_name(RemoteFault f)
{
	static const char *const names[] = {
		[REMOTE_OK] = "ok", [REMOTE_PARTIAL] = "partial",
		[REMOTE_FAILED] = "failed", [REMOTE_AWAY] = "away",
		[REMOTE_ROOT_CHANGED] = "root changed",
		[REMOTE_HOST_KEY] = "host key", [REMOTE_AUTH] = "auth",
	};

	return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}

void
remote_tail_add(char *buf, size_t size, const char *line, size_t len)
{
	size_t have = strlen(buf);

	if (have + len + 2 > size) {
		memmove(buf, buf + have / 2, have - have / 2 + 1);
		have = strlen(buf);
	}
	if (have + len + 2 <= size) {
		memcpy(buf + have, line, len);
		buf[have + len] = '\n';
		buf[have + len + 1] = '\0';
	}
}

/* The last line of text that says something, into why. */
static void
last_line(const char *text, char *why, size_t size)
{
	const char *end = text + strlen(text), *start;

	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	snprintf(why, size, "%.*s", (int)(end - start), start);
	for (char *p = why; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

RemoteFault
remote_classify(int status, const char *err, char *why, size_t size)
{
	const char *hit;

	if (err == NULL)
		err = "";
	why[0] = '\0';
	if (status == 0 || status == 24 || status == 25)
		return REMOTE_OK;
	if (strstr(err, "Host key verification failed") != NULL ||
	    strstr(err, "REMOTE HOST IDENTIFICATION HAS CHANGED") != NULL) {
		snprintf(why, size, "the host's key does not match the one "
		    "pinned in known_hosts (refused: nothing sent)");
		return REMOTE_HOST_KEY;
	}
	if (strstr(err, "Permission denied (publickey") != NULL) {
		snprintf(why, size, "the host refused the key (Permission "
		    "denied)");
		return REMOTE_AUTH;
	}
	if ((hit = strstr(err, "is not the pinned root")) != NULL) {
		snprintf(why, size, "the destination root on the host is not "
		    "the one this daemon started with (replaced or "
		    "unmounted)");
		return REMOTE_ROOT_CHANGED;
	}
	if ((hit = strstr(err, "treesync-remote: ")) != NULL) {
		/* Its own line says it best (a refusal, a missing root). */
		last_line(hit, why, size);
		return REMOTE_FAILED;
	}
	last_line(err, why, size);
	switch (status) {
	case 23:
		return REMOTE_PARTIAL;
	case 255:
	case 12:
	case 10:
	case 30:
	case 35:
	case 20:
		if (why[0] == '\0')
			snprintf(why, size, "%s exited with %d (the connection "
			    "was lost or timed out)", status == 255 ? "ssh" :
			    "rsync", status);
		return REMOTE_AWAY;
	default:
		if (why[0] == '\0')
			snprintf(why, size, "exit %d", status);
		return REMOTE_FAILED;
	}
}
