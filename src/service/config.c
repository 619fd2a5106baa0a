/*
 * config — see include/service/config.h.
 *
 * Loading is one pass over the libconfig tree that fills a Config and
 * records every problem with the file and line of the offending setting,
 * then a pass over the finished syncs for the rules that involve two paths
 * (a destination inside its source, two syncs writing one destination).
 * Problems are sorted by line before they are joined, so the operator reads
 * them in file order whatever pass found them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "config-remotes.h"
#include "service/config.h"

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

static const char *const global_keys[] = {
	"workers", "delay_ms", "log_file", "log_level", "control_socket",
	"control_socket_group", "metrics_listen",
	"max_delete", "watch", "syncs", "remotes", NULL,
};

static const char *const sync_keys[] = {
	"name", "source", "destinations", "exclude", "delete", "compare",
	"max_delete", NULL,
};

struct problem {
	char *text;		/* "FILE:LINE: message\n" */
	bool other_file;	/* from an @include'd file: after the main file */
	int line;
	size_t seq;		/* keeps the order of discovery within a line */
};

struct problems {
	const char *path;	/* the main file, as given */
	struct problem *v;
	size_t n;
	size_t cap;
	bool oom;
};

/* What the loader knows about one sync beyond what SyncPairConfig keeps. */
struct sync_load {
	char *label;		/* "sync 'NAME'", or "sync #N" without a name */
	char *prefix;		/* label + ": ", to start a message */
	const config_setting_t *group;
	const config_setting_t *source_setting;	/* NULL: no valid source */
	const config_setting_t **dest_settings;	/* parallel to destinations */
	char *source_real;	/* symlinks resolved; NULL when unknown */
	char **dest_real;
};

struct loader {
	const char *path;
	char *text;		/* the file, read when line_of needs it */
	bool text_read;
	struct problems pb;
	Config *cfg;
	struct sync_load *syncs;	/* parallel to cfg->syncs */
};

enum relation {
	REL_NONE,
	REL_SAME,
	REL_A_INSIDE_B,
	REL_B_INSIDE_A,
};

/* A path and what it resolves to, for the overlap rules. */
struct path_ref {
	const char *path;
	const char *real;
};

enum {
	PATH_OK = 0,
	PATH_RELATIVE,
	PATH_DOTDOT,
};

/*
 * Control characters in place as \xNN: a path may hold a newline, and a
 * problem must stay one "FILE:LINE: message" line (found by fuzz-config).
 * Returns a malloc'd copy or NULL.
 */
static char *
escape_controls(const char *s)
{
	size_t n = 0, i;
	char *out, *w;

	for (i = 0; s[i] != '\0'; i++)
		n += ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? 4 : 1;
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0, w = out; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			w += sprintf(w, "\\x%02x", c);
		else
			*w++ = (char)c;
	}
	*w = '\0';
	return out;
}

static void
problems_vadd(struct problems *pb, const char *file, int line,
    const char *fmt, va_list ap)
{
	char *raw = NULL, *msg = NULL, *text = NULL;
	bool added = false;

	if (vasprintf(&raw, fmt, ap) < 0) {
		raw = NULL;
		goto out;
	}
	if ((msg = escape_controls(raw)) == NULL)
		goto out;
	if (file == NULL)
		file = pb->path;
	if ((line > 0 ? asprintf(&text, "%s:%d: %s\n", file, line, msg) :
	    asprintf(&text, "%s: %s\n", file, msg)) < 0) {
		text = NULL;
		goto out;
	}
	if (pb->n == pb->cap) {
		size_t cap = pb->cap ? pb->cap * 2 : 8;
		struct problem *v = realloc(pb->v, cap * sizeof *v);

		if (v == NULL)
			goto out;
		pb->v = v;
		pb->cap = cap;
	}
	pb->v[pb->n] = (struct problem){
		.text = text,
		.other_file = strcmp(file, pb->path) != 0,
		.line = line,
		.seq = pb->n,
	};
	pb->n++;
	text = NULL;
	added = true;
out:
	if (!added)
		pb->oom = true;
	free(text);
	free(msg);
	free(raw);
}

static void __attribute__((format(printf, 4, 5)))
problems_add(struct problems *pb, const char *file, int line,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problems_vadd(pb, file, line, fmt, ap);
	va_end(ap);
}

static char *
read_text(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	if (getdelim(&text, &len, '\0', f) < 0) {
		free(text);
		text = NULL;
	}
	fclose(f);
	return text;
}

static bool
line_has_quote(const char *text, int line)
{
	const char *p = text, *end;

	for (; line > 1 && p != NULL; line--) {
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		return false;
	end = strchrnul(p, '\n');
	return memchr(p, '"', (size_t)(end - p)) != NULL;
}

/*
 * The line of setting s. libconfig dates a string in a list to the token
 * after it (it looks ahead for adjacent literals to join), so the last path
 * of a list whose ')' is on a line of its own would point at the ')'; for
 * those, walk back to the line that holds the closing quote.
 */
static int
line_of(struct loader *ld, const config_setting_t *s)
{
	const config_setting_t *parent = config_setting_parent(s);
	const char *file = config_setting_source_file(s);
	int line = config_setting_source_line(s);

	if (config_setting_type(s) != CONFIG_TYPE_STRING || parent == NULL ||
	    (!config_setting_is_list(parent) &&
	    !config_setting_is_array(parent)) ||
	    (file != NULL && strcmp(file, ld->path) != 0))
		return line;
	if (!ld->text_read) {
		ld->text = read_text(ld->path);
		ld->text_read = true;
	}
	if (ld->text == NULL)
		return line;
	while (line > 1 && !line_has_quote(ld->text, line))
		line--;
	return line;
}

/* A problem at setting at (NULL: the file as a whole). */
static void __attribute__((format(printf, 3, 4)))
report(struct loader *ld, const config_setting_t *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (at != NULL)
		problems_vadd(&ld->pb, config_setting_source_file(at),
		    line_of(ld, at), fmt, ap);
	else
		problems_vadd(&ld->pb, NULL, 0, fmt, ap);
	va_end(ap);
}

/* The loader's voice for config-remotes.c. */
static void
voice_report(void *ld, const config_setting_t *at, const char *fmt,
    va_list ap)
{
	struct loader *l = ld;

	if (at != NULL)
		problems_vadd(&l->pb, config_setting_source_file(at),
		    line_of(l, at), fmt, ap);
	else
		problems_vadd(&l->pb, NULL, 0, fmt, ap);
}

static int
voice_line_of(void *ld, const config_setting_t *s)
{
	return line_of(ld, s);
}

static void describe_value(const config_setting_t *s, char *buf,
    size_t size);
static int normalize_path(const char *in, char **out);

static ConfigVoice
voice_of(struct loader *ld)
{
	return (ConfigVoice){ .ld = ld, .report = voice_report,
	    .describe = describe_value, .line_of = voice_line_of,
	    .normalize = normalize_path };
}

static int
problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;

	if (x->other_file != y->other_file)
		return x->other_file ? 1 : -1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The problems in file order as one malloc'd text; NULL when out of memory. */
static char *
problems_join(struct problems *pb)
{
	char *text = NULL, *w;
	size_t i, len = 0;

	if (pb->n == 0 && pb->oom) {
		if (asprintf(&text, "%s: out of memory\n", pb->path) < 0)
			text = NULL;
		return text;
	}
	qsort(pb->v, pb->n, sizeof *pb->v, problem_cmp);
	for (i = 0; i < pb->n; i++)
		len += strlen(pb->v[i].text);
	text = malloc(len + 1);
	if (text == NULL)
		return NULL;
	w = text;
	for (i = 0; i < pb->n; i++)
		w = stpcpy(w, pb->v[i].text);
	*w = '\0';
	return text;
}

static void
problems_free(struct problems *pb)
{
	size_t i;

	for (i = 0; i < pb->n; i++)
		free(pb->v[i].text);
	free(pb->v);
}

/* s in double quotes, escaped and shortened, so that a message stays one line. */
static void
quote(const char *s, char *buf, size_t size)
{
	size_t w = 0, i;

	buf[w++] = '"';
	for (i = 0; s[i] != '\0' && w + 8 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			w += snprintf(buf + w, size - w, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			w += snprintf(buf + w, size - w, "\\x%02x", c);
		else
			buf[w++] = (char)c;
	}
	if (s[i] != '\0')
		w += snprintf(buf + w, size - w, "...");
	snprintf(buf + w, size - w, "\"");
}

/* "integer 5", "string \"4\"", "a list": what a setting holds, for "got ...". */
static void
describe_value(const config_setting_t *s, char *buf, size_t size)
{
	char q[96];

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		snprintf(buf, size, "integer %lld", config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		snprintf(buf, size, "float %g", config_setting_get_float(s));
		break;
	case CONFIG_TYPE_BOOL:
		snprintf(buf, size, "boolean %s",
		    config_setting_get_bool(s) ? "true" : "false");
		break;
	case CONFIG_TYPE_STRING:
		quote(config_setting_get_string(s), q, sizeof q);
		snprintf(buf, size, "string %s", q);
		break;
	case CONFIG_TYPE_GROUP:
		snprintf(buf, size, "a group { ... }");
		break;
	case CONFIG_TYPE_ARRAY:
		snprintf(buf, size, "an array [ ... ]");
		break;
	case CONFIG_TYPE_LIST:
		snprintf(buf, size, "a list ( ... )");
		break;
	default:
		snprintf(buf, size, "nothing");
		break;
	}
}

static bool
same_letter(char a, char b)
{
	return tolower((unsigned char)a) == tolower((unsigned char)b);
}

/* Edit distance counting a swap of neighbours as one edit, ignoring case. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t d[33][33];
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > 32 || lb > 32)
		return (size_t)-1;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t cost = !same_letter(a[i - 1], b[j - 1]);
			size_t v = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 &&
			    same_letter(a[i - 1], b[j - 2]) &&
			    same_letter(a[i - 2], b[j - 1]) &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/* The known key that key is most likely a typo of, or NULL. */
static const char *
suggest(const char *key, const char *const *known)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1, i;

	for (i = 0; known[i] != NULL; i++) {
		size_t len = strlen(known[i]);
		size_t limit = len / 3 > 2 ? 2 : (len / 3 < 1 ? 1 : len / 3);
		size_t d = edit_distance(key, known[i]);

		if (d <= limit && d < best_d) {
			best = known[i];
			best_d = d;
		}
	}
	return best;
}

static bool
is_key_of(const char *key, const char *const *known)
{
	size_t i;

	for (i = 0; known[i] != NULL; i++)
		if (strcmp(key, known[i]) == 0)
			return true;
	return false;
}

/* in_sync: NULL at top level, else the label of the sync group. */
static void
report_unknown_key(struct loader *ld, const config_setting_t *s,
    const char *in_sync)
{
	const char *key = config_setting_name(s);
	const char *const *known = in_sync != NULL ? sync_keys : global_keys;
	const char *const *other = in_sync != NULL ? global_keys : sync_keys;
	const char *near = suggest(key, known);
	const char *in = in_sync != NULL ? " in " : "";

	if (in_sync == NULL)
		in_sync = "";
	if (near != NULL)
		report(ld, s, "unknown key '%s'%s%s (did you mean '%s'?)", key,
		    in, in_sync, near);
	else if (is_key_of(key, other) && in[0] != '\0')
		report(ld, s, "unknown key '%s'%s%s (it is a global setting; "
		    "move it to the top level)", key, in, in_sync);
	else if (is_key_of(key, other))
		report(ld, s, "unknown key '%s' at the top level (it belongs "
		    "inside a sync group: syncs = ( { ... } ))", key);
	else
		report(ld, s, "unknown key '%s'%s%s", key, in, in_sync);
}

/*
 * Collapses "//" and "/./" and drops a trailing '/'. A ".." is refused
 * rather than folded away: lexically "/a/link/.." is "/a", but the kernel
 * resolves it through the symlink, so folding it would hide what the path
 * names.
 */
static int
normalize_path(const char *in, char **out)
{
	const char *p = in;
	char *buf, *w;

	if (in[0] != '/')
		return PATH_RELATIVE;
	buf = malloc(strlen(in) + 2);
	if (buf == NULL)
		return -ENOMEM;
	w = buf;
	while (*p != '\0') {
		const char *c;
		size_t n;

		while (*p == '/')
			p++;
		c = p;
		while (*p != '\0' && *p != '/')
			p++;
		n = (size_t)(p - c);
		if (n == 0 || (n == 1 && c[0] == '.'))
			continue;
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			free(buf);
			return PATH_DOTDOT;
		}
		*w++ = '/';
		memcpy(w, c, n);
		w += n;
	}
	if (w == buf)
		*w++ = '/';
	*w = '\0';
	*out = buf;
	return PATH_OK;
}

/*
 * A string setting holding an absolute path, normalized into *out. what
 * names it in messages ("source", "destinations: entry 2"); prefix is ""
 * or "sync 'NAME': ". Returns -ENOMEM or 0 (problems are reported).
 */
static int
get_path(struct loader *ld, const config_setting_t *s, const char *prefix,
    const char *what, char **out)
{
	char got[160];
	int r;

	*out = NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		describe_value(s, got, sizeof got);
		report(ld, s, "%s%s: must be a string holding an absolute path, "
		    "got %s", prefix, what, got);
		return 0;
	}
	r = normalize_path(config_setting_get_string(s), out);
	if (r < 0)
		return r;
	if (r != PATH_OK)
		describe_value(s, got, sizeof got);
	if (r == PATH_RELATIVE)
		report(ld, s, "%s%s: must be an absolute path (starting with "
		    "'/'), got %s", prefix, what, got);
	else if (r == PATH_DOTDOT)
		report(ld, s, "%s%s: must not contain a '..' component (it "
		    "would be resolved through symlinks; write the real path), "
		    "got %s", prefix, what, got);
	return 0;
}

static void
get_int_range(struct loader *ld, const config_setting_t *s, int min, int max,
    int *out)
{
	const char *key = config_setting_name(s);
	char got[160];
	long long v;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		describe_value(s, got, sizeof got);
		report(ld, s, "%s: must be an integer from %d to %d, got %s",
		    key, min, max, got);
		return;
	}
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		report(ld, s, "%s: must be an integer from %d to %d, got %lld",
		    key, min, max, v);
		return;
	}
	*out = (int)v;
}

/* A string setting that must be one of a few words; NULL when it is not. */
static const char *
get_word(struct loader *ld, const config_setting_t *s, const char *prefix,
    const char *expected)
{
	char got[160];

	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		return config_setting_get_string(s);
	describe_value(s, got, sizeof got);
	report(ld, s, "%s%s: must be %s, got %s", prefix, config_setting_name(s),
	    expected, got);
	return NULL;
}

/*
 * max_delete: a count of entries (an integer >= 0) or a percentage of the
 * destination's entries ("10%", 0..100).
 */
static void
load_max_delete(struct loader *ld, const config_setting_t *s,
    const char *prefix, MaxDelete *out)
{
	static const char expected[] = "a count (max_delete = 1000;) or a "
	    "percentage of the destination (max_delete = \"10%\";)";
	char got[160];
	const char *text;
	char *end;
	unsigned long long v;

	if (config_setting_type(s) == CONFIG_TYPE_INT ||
	    config_setting_type(s) == CONFIG_TYPE_INT64) {
		long long n = config_setting_get_int64(s);
		if (n < 0) {
			report(ld, s, "%smax_delete: must be %s, got %lld",
			    prefix, expected, n);
			return;
		}
		out->kind = MAX_DELETE_COUNT;
		out->value = (unsigned long long)n;
		return;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		goto bad;
	text = config_setting_get_string(s);
	if (text[0] < '0' || text[0] > '9')
		goto bad;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || strcmp(end, "%") != 0)
		goto bad;
	if (v > 100) {
		report(ld, s, "%smax_delete: a percentage must be from 0%% to "
		    "100%%, got \"%s\"", prefix, text);
		return;
	}
	out->kind = MAX_DELETE_PERCENT;
	out->value = v;
	return;
bad:
	describe_value(s, got, sizeof got);
	report(ld, s, "%smax_delete: must be %s, got %s", prefix, expected,
	    got);
}

static void
load_log_level(struct loader *ld, const config_setting_t *s)
{
	static const char expected[] =
	    "one of \"error\", \"warn\", \"info\", \"debug\"";
	const char *word = get_word(ld, s, "", expected);
	char got[160];
	int level;

	if (word == NULL)
		return;
	level = synclog_level_from_string(word);
	if (level < 0) {
		describe_value(s, got, sizeof got);
		report(ld, s, "log_level: must be %s, got %s", expected, got);
		return;
	}
	ld->cfg->log_level = (LogLevel)level;
}

static void
load_watch(struct loader *ld, const config_setting_t *s)
{
	static const char expected[] =
	    "one of \"auto\", \"inotify\", \"fanotify\"";
	const char *word = get_word(ld, s, "", expected);
	char got[160];
	int mode;

	if (word == NULL)
		return;
	if ((mode = watcher_mode_from_string(word)) < 0) {
		describe_value(s, got, sizeof got);
		report(ld, s, "watch: must be %s, got %s", expected, got);
		return;
	}
	ld->cfg->watch = (WatchMode)mode;
}

static int
load_control_socket(struct loader *ld, const config_setting_t *s)
{
	char *path = NULL;
	int r;

	r = get_path(ld, s, "", "control_socket", &path);
	if (r < 0 || path == NULL)
		goto out;
	if (strlen(path) > SOCKET_PATH_MAX) {
		report(ld, s, "control_socket: '%s' is too long for a Unix "
		    "socket (%zu bytes, at most %zu)", path, strlen(path),
		    SOCKET_PATH_MAX);
		goto out;
	}
	free(ld->cfg->control_socket);
	ld->cfg->control_socket = path;
	path = NULL;
out:
	free(path);
	return r;
}

/* control_socket_group: a group name that this machine knows. */
static int
load_control_socket_group(struct loader *ld, const config_setting_t *s)
{
	struct group grp, *found = NULL;
	char *buf = NULL, got[160];
	size_t size = 4096;
	const char *name;
	int e, r = 0;

	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    config_setting_get_string(s)[0] == '\0') {
		describe_value(s, got, sizeof got);
		report(ld, s, "control_socket_group: must be the name of a "
		    "group (control_socket_group = \"treesync\";), got %s", got);
		goto out;
	}
	name = config_setting_get_string(s);
	/* A group with many members needs a larger buffer (ERANGE). */
	do {
		free(buf);
		if ((buf = malloc(size)) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		e = getgrnam_r(name, &grp, buf, size, &found);
		size *= 4;
	} while (e == ERANGE && size <= (16u << 20));
	if (found == NULL) {
		quote(name, got, sizeof got);
		report(ld, s, "control_socket_group: %s%s (create it with "
		    "groupadd, or remove the setting: the socket then gets "
		    "the daemon's group)", e != 0 && e != ENOENT && e != ESRCH ?
		    "cannot look up the group " : "there is no group ", got);
		goto out;
	}
	free(ld->cfg->control_socket_group);
	if ((ld->cfg->control_socket_group = strdup(name)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	ld->cfg->control_socket_gid = grp.gr_gid;
out:
	free(buf);
	return r;
}

/*
 * "ADDR:PORT" into *ss: a numeric IPv4 address, or an IPv6 one in
 * brackets, and a port 1..65535. false when text is not that.
 */
static bool
parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *colon, *start = text, *end;
	unsigned long port;
	char *stop;

	memset(ss, 0, sizeof *ss);
	if (text[0] == '[') {
		start = text + 1;
		if ((end = strchr(start, ']')) == NULL || end[1] != ':')
			return false;
		colon = end + 1;
	} else {
		if ((colon = strchr(text, ':')) == NULL ||
		    strchr(colon + 1, ':') != NULL)
			return false;
		end = colon;
	}
	if (end == start || (size_t)(end - start) >= sizeof addr ||
	    colon[1] < '0' || colon[1] > '9' || strlen(colon + 1) > 5)
		return false;
	memcpy(addr, start, (size_t)(end - start));
	addr[end - start] = '\0';
	port = strtoul(colon + 1, &stop, 10);
	if (*stop != '\0' || port < 1 || port > 65535)
		return false;
	if (text[0] == '[') {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)ss;

		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons((uint16_t)port);
		*len = sizeof *sa;
		return inet_pton(AF_INET6, addr, &sa->sin6_addr) == 1;
	} else {
		struct sockaddr_in *sa = (struct sockaddr_in *)ss;

		sa->sin_family = AF_INET;
		sa->sin_port = htons((uint16_t)port);
		*len = sizeof *sa;
		return inet_pton(AF_INET, addr, &sa->sin_addr) == 1;
	}
}

/* metrics_listen = "127.0.0.1:9851"; the Prometheus endpoint. */
static int
load_metrics_listen(struct loader *ld, const config_setting_t *s)
{
	char got[160];

	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    !parse_listen(config_setting_get_string(s), &ld->cfg->metrics_addr,
	    &ld->cfg->metrics_addrlen)) {
		describe_value(s, got, sizeof got);
		report(ld, s, "metrics_listen: must be \"ADDR:PORT\": a numeric "
		    "IPv4 address or an IPv6 address in brackets, and a port "
		    "from 1 to 65535 (\"127.0.0.1:9851\", \"[::1]:9851\"), "
		    "got %s", got);
		return 0;
	}
	free(ld->cfg->metrics_listen);
	if ((ld->cfg->metrics_listen = strdup(config_setting_get_string(s)))
	    == NULL)
		return -ENOMEM;
	return 0;
}

/* Checks the name and sets the label: "sync 'NAME'", or "sync #N" without one. */
static int
load_sync_name(struct loader *ld, const config_setting_t *group, size_t number,
    SyncPairConfig *pair, struct sync_load *sl)
{
	static const char allowed[] =
	    "letters, digits, '.', '_' and '-' (it appears in the log and in "
	    "treesyncctl commands)";
	const config_setting_t *s = config_setting_get_member(group, "name");
	const char *name = NULL;
	char got[160];
	size_t i;
	int r = 0;

	if (s != NULL && config_setting_type(s) == CONFIG_TYPE_STRING)
		name = config_setting_get_string(s);
	if (name != NULL && name[0] != '\0' && name[0] != '-' &&
	    name[strspn(name, NAME_CHARS)] == '\0') {
		pair->name = strdup(name);
		if (pair->name == NULL ||
		    asprintf(&sl->label, "sync '%s'", name) < 0) {
			sl->label = NULL;
			r = -ENOMEM;
			goto out;
		}
	} else if (asprintf(&sl->label, "sync #%zu", number) < 0) {
		sl->label = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (asprintf(&sl->prefix, "%s: ", sl->label) < 0) {
		sl->prefix = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (s == NULL) {
		report(ld, group, "%s: missing required key 'name'", sl->label);
		goto out;
	}
	describe_value(s, got, sizeof got);
	if (name == NULL)
		report(ld, s, "%s: name: must be a string of %s, got %s",
		    sl->label, allowed, got);
	else if (name[0] == '\0')
		report(ld, s, "%s: name: must not be empty", sl->label);
	else if (name[0] == '-')
		report(ld, s, "%s: name: must not start with '-' (treesyncctl "
		    "would take it for an option), got %s", sl->label, got);
	else if (pair->name == NULL)
		report(ld, s, "%s: name: may hold only %s, got %s", sl->label,
		    allowed, got);
	if (pair->name == NULL)
		goto out;
	for (i = 0; ld->syncs + i != sl; i++) {
		const SyncPairConfig *other = &ld->cfg->syncs[i];

		if (other->name != NULL && strcmp(other->name, name) == 0) {
			report(ld, s, "%s: name: '%s' is already the name of the "
			    "sync at line %d; names must be unique", sl->label,
			    name, other->line);
			break;
		}
	}
out:
	return r;
}

static int
load_destinations(struct loader *ld, const config_setting_t *s,
    SyncPairConfig *pair, struct sync_load *sl)
{
	const char *prefix = sl->prefix;
	char what[64], got[160];
	int i, n, r = 0;

	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		describe_value(s, got, sizeof got);
		report(ld, s, "%sdestinations: must be a list of absolute paths, "
		    "e.g. ( \"/backup/projects\" ), got %s", prefix, got);
		goto out;
	}
	n = config_setting_length(s);
	if (n == 0) {
		report(ld, s, "%sdestinations: must hold at least one path",
		    prefix);
		goto out;
	}
	pair->destinations = calloc((size_t)n, sizeof *pair->destinations);
	pair->dest_remotes = calloc((size_t)n, sizeof *pair->dest_remotes);
	sl->dest_settings = calloc((size_t)n, sizeof *sl->dest_settings);
	if (pair->destinations == NULL || pair->dest_remotes == NULL ||
	    sl->dest_settings == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		ConfigVoice v = voice_of(ld);
		const RemoteConfig *remote = NULL;
		char *path;

		snprintf(what, sizeof what, "destinations: entry %d", i + 1);
		/* "NAME:/path" names a remote (config-remotes.c). */
		r = config_remote_destination(&v, ld->cfg, e, prefix, what,
		    &path, &remote);
		if (r == 0)
			r = get_path(ld, e, prefix, what, &path);
		if (r < 0)
			goto out;
		if (path == NULL)
			continue;
		pair->dest_remotes[pair->n_destinations] = remote;
		sl->dest_settings[pair->n_destinations] = e;
		pair->destinations[pair->n_destinations++] = path;
	}
out:
	return r;
}

static int
load_exclude(struct loader *ld, const config_setting_t *s,
    SyncPairConfig *pair, struct sync_load *sl)
{
	char got[160];
	int i, n, r = 0;

	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		describe_value(s, got, sizeof got);
		report(ld, s, "%s: exclude: must be a list of shell patterns, "
		    "e.g. ( \"*.swp\", \".git/\" ), got %s", sl->label, got);
		goto out;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);

		describe_value(e, got, sizeof got);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			report(ld, e, "%s: exclude: entry %d: must be a string "
			    "holding a shell pattern, got %s", sl->label, i + 1,
			    got);
			continue;
		}
		r = exclude_add(pair->exclude, config_setting_get_string(e));
		if (r == -EINVAL) {
			report(ld, e, "%s: exclude: entry %d: a pattern may not "
			    "be empty or only '/', got %s", sl->label, i + 1,
			    got);
			r = 0;
		} else if (r < 0) {
			goto out;
		}
	}
out:
	return r;
}

static int
load_sync(struct loader *ld, const config_setting_t *group, size_t number)
{
	SyncPairConfig *pair = &ld->cfg->syncs[ld->cfg->n_syncs];
	struct sync_load *sl = &ld->syncs[ld->cfg->n_syncs];
	bool seen_source = false, seen_destinations = false;
	const char *prefix;
	char got[160];
	int i, n, r;

	ld->cfg->n_syncs++;
	pair->delete = true;
	pair->compare = COMPARE_MTIME;
	/* Globals are read before the syncs (see load_globals). */
	pair->max_delete = ld->cfg->max_delete;
	pair->line = line_of(ld, group);
	sl->group = group;
	r = exclude_new(&pair->exclude);
	if (r < 0)
		goto out;
	r = load_sync_name(ld, group, number, pair, sl);
	if (r < 0)
		goto out;
	n = config_setting_length(group);
	prefix = sl->prefix;
	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, i);
		const char *key = config_setting_name(s);
		const char *word;

		if (strcmp(key, "name") == 0) {
			continue;
		} else if (strcmp(key, "source") == 0) {
			seen_source = true;
			r = get_path(ld, s, prefix, "source", &pair->source);
			if (pair->source != NULL) {
				pair->source_line = line_of(ld, s);
				sl->source_setting = s;
			}
		} else if (strcmp(key, "destinations") == 0) {
			seen_destinations = true;
			r = load_destinations(ld, s, pair, sl);
		} else if (strcmp(key, "exclude") == 0) {
			r = load_exclude(ld, s, pair, sl);
		} else if (strcmp(key, "delete") == 0) {
			if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
				pair->delete = config_setting_get_bool(s);
			} else {
				describe_value(s, got, sizeof got);
				report(ld, s, "%sdelete: must be true or false, "
				    "got %s", prefix, got);
			}
		} else if (strcmp(key, "compare") == 0) {
			static const char expected[] =
			    "\"mtime\" or \"hash\"";

			word = get_word(ld, s, prefix, expected);
			if (word != NULL && strcmp(word, "mtime") == 0) {
				pair->compare = COMPARE_MTIME;
			} else if (word != NULL && strcmp(word, "hash") == 0) {
				pair->compare = COMPARE_HASH;
			} else if (word != NULL) {
				describe_value(s, got, sizeof got);
				report(ld, s, "%scompare: must be %s, got %s",
				    prefix, expected, got);
			}
		} else if (strcmp(key, "max_delete") == 0) {
			load_max_delete(ld, s, prefix, &pair->max_delete);
		} else {
			report_unknown_key(ld, s, sl->label);
		}
		if (r < 0)
			goto out;
	}
	if (!seen_source)
		report(ld, group, "%s: missing required key 'source'",
		    sl->label);
	if (!seen_destinations)
		report(ld, group, "%s: missing required key 'destinations'",
		    sl->label);
	{
		ConfigVoice v = voice_of(ld);

		config_remotes_check_excludes(&v, group, pair, sl->label);
	}
out:
	return r;
}

static int
load_syncs(struct loader *ld, const config_setting_t *s)
{
	char got[160];
	int i, n, r = 0;

	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		describe_value(s, got, sizeof got);
		report(ld, s, "syncs: must be a list of sync groups, "
		    "syncs = ( { name = ...; source = ...; destinations = "
		    "( ... ); } ), got %s", got);
		goto out;
	}
	/* An empty list is valid: the daemon idles (its control socket
	 * answers) until a reload brings a pair; the packaged config
	 * starts so. */
	if ((n = config_setting_length(s)) == 0)
		goto out;
	ld->cfg->syncs = calloc((size_t)n, sizeof *ld->cfg->syncs);
	ld->syncs = calloc((size_t)n, sizeof *ld->syncs);
	if (ld->cfg->syncs == NULL || ld->syncs == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);

		if (!config_setting_is_group(e)) {
			describe_value(e, got, sizeof got);
			report(ld, e, "syncs: entry %d: must be a group "
			    "{ name = ...; source = ...; destinations = "
			    "( ... ); }, got %s", i + 1, got);
			continue;
		}
		r = load_sync(ld, e, (size_t)i + 1);
		if (r < 0)
			goto out;
	}
out:
	return r;
}

static int
load_globals(struct loader *ld, const config_setting_t *root)
{
	const config_setting_t *syncs = NULL, *remotes = NULL;
	ConfigVoice v = voice_of(ld);
	int i, n, r = 0;

	n = config_setting_length(root);
	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(root, i);
		const char *key = config_setting_name(s);

		if (strcmp(key, "workers") == 0) {
			get_int_range(ld, s, 1, CONFIG_MAX_WORKERS,
			    &ld->cfg->workers);
		} else if (strcmp(key, "delay_ms") == 0) {
			get_int_range(ld, s, 0, CONFIG_MAX_DELAY_MS,
			    &ld->cfg->delay_ms);
		} else if (strcmp(key, "log_file") == 0) {
			r = get_path(ld, s, "", "log_file", &ld->cfg->log_file);
		} else if (strcmp(key, "log_level") == 0) {
			load_log_level(ld, s);
		} else if (strcmp(key, "control_socket") == 0) {
			r = load_control_socket(ld, s);
		} else if (strcmp(key, "control_socket_group") == 0) {
			r = load_control_socket_group(ld, s);
		} else if (strcmp(key, "metrics_listen") == 0) {
			r = load_metrics_listen(ld, s);
		} else if (strcmp(key, "max_delete") == 0) {
			load_max_delete(ld, s, "", &ld->cfg->max_delete);
		} else if (strcmp(key, "watch") == 0) {
			load_watch(ld, s);
		} else if (strcmp(key, "syncs") == 0) {
			syncs = s;
		} else if (strcmp(key, "remotes") == 0) {
			remotes = s;
		} else {
			report_unknown_key(ld, s, NULL);
		}
		if (r < 0)
			goto out;
	}
	/* Destinations name remotes: those first, wherever they are. */
	if (remotes != NULL && (r = config_remotes_load(&v, remotes,
	    ld->cfg)) < 0)
		goto out;
	if ((r = config_remotes_finish(&v, ld->cfg)) < 0)
		goto out;
	if (syncs == NULL)
		report(ld, NULL, "missing required key 'syncs' (a list of sync "
		    "groups)");
	else
		r = load_syncs(ld, syncs);
out:
	return r;
}

static bool
path_inside(const char *child, const char *parent)
{
	size_t n = strlen(parent);

	if (strcmp(parent, "/") == 0)
		return child[1] != '\0';
	return strncmp(child, parent, n) == 0 && child[n] == '/';
}

static enum relation
relate(const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return REL_SAME;
	if (path_inside(a, b))
		return REL_A_INSIDE_B;
	if (path_inside(b, a))
		return REL_B_INSIDE_A;
	return REL_NONE;
}

/* As written first; as resolved when only the symlinks tell (*via_real). */
static enum relation
relate_refs(const struct path_ref *a, const struct path_ref *b, bool *via_real)
{
	enum relation rel = relate(a->path, b->path);

	*via_real = false;
	if (rel != REL_NONE || a->real == NULL || b->real == NULL)
		return rel;
	rel = relate(a->real, b->real);
	*via_real = rel != REL_NONE;
	return rel;
}

/*
 * realpath() of the deepest ancestor of path that exists, with the rest
 * appended: a destination that does not exist yet can still lie under a
 * symlink into its source. *out is NULL when nothing could be resolved.
 */
static int
resolve_path(const char *path, char **out)
{
	char *prefix, *real = NULL, *cut;
	const char *tail;
	int r = 0;

	*out = NULL;
	prefix = strdup(path);
	if (prefix == NULL)
		return -ENOMEM;
	for (;;) {
		real = realpath(prefix, NULL);
		if (real != NULL)
			break;
		if ((errno != ENOENT && errno != ENOTDIR) ||
		    strcmp(prefix, "/") == 0)
			goto out;
		cut = strrchr(prefix, '/');
		if (cut == prefix)
			cut[1] = '\0';
		else
			*cut = '\0';
	}
	tail = path + strlen(prefix);
	while (*tail == '/')
		tail++;
	if (*tail == '\0')
		*out = strdup(real);
	else if (asprintf(out, "%s/%s", strcmp(real, "/") == 0 ? "" : real,
	    tail) < 0)
		*out = NULL;
	if (*out == NULL)
		r = -ENOMEM;
out:
	free(real);
	free(prefix);
	return r;
}

static int
resolve_syncs(struct loader *ld)
{
	size_t i, j;
	int r = 0;

	for (i = 0; i < ld->cfg->n_syncs; i++) {
		SyncPairConfig *pair = &ld->cfg->syncs[i];
		struct sync_load *sl = &ld->syncs[i];

		if (pair->source != NULL) {
			r = resolve_path(pair->source, &sl->source_real);
			if (r < 0)
				goto out;
		}
		if (pair->n_destinations == 0)
			continue;
		sl->dest_real = calloc(pair->n_destinations,
		    sizeof *sl->dest_real);
		if (sl->dest_real == NULL) {
			r = -ENOMEM;
			goto out;
		}
		for (j = 0; j < pair->n_destinations; j++) {
			if (pair->dest_remotes[j] != NULL)
				continue;	/* another host's file system */
			r = resolve_path(pair->destinations[j],
			    &sl->dest_real[j]);
			if (r < 0)
				goto out;
		}
	}
out:
	return r;
}

/*
 * "LABEL: WHAT_A 'a' is inside WHAT_B 'b'WHERE_B", and what the two resolve
 * to when only the symlinks reveal it.
 */
static void
report_overlap(struct loader *ld, const config_setting_t *at,
    const char *label, const char *what_a, const struct path_ref *a,
    enum relation rel, const char *what_b, const struct path_ref *b,
    const char *where_b, bool via_real)
{
	const char *verb = rel == REL_SAME ? "is the same directory as" :
	    rel == REL_A_INSIDE_B ? "is inside" : "contains";

	if (via_real)
		report(ld, at, "%s: %s '%s' %s %s '%s'%s (after resolving "
		    "symlinks: '%s' and '%s')", label, what_a, a->path, verb,
		    what_b, b->path, where_b, a->real, b->real);
	else
		report(ld, at, "%s: %s '%s' %s %s '%s'%s", label, what_a,
		    a->path, verb, what_b, b->path, where_b);
}

static const config_setting_t *
later_setting(struct loader *ld, const config_setting_t *a,
    const config_setting_t *b)
{
	return line_of(ld, a) > line_of(ld, b) ? a : b;
}

/* Within one sync: each destination against its source and the ones before it. */
static void
check_sync_overlaps(struct loader *ld, size_t i)
{
	const SyncPairConfig *pair = &ld->cfg->syncs[i];
	const struct sync_load *sl = &ld->syncs[i];
	struct path_ref src = { pair->source, sl->source_real };
	char where[64];
	size_t j, k;

	for (j = 0; j < pair->n_destinations; j++) {
		struct path_ref dst = { pair->destinations[j], sl->dest_real[j] };
		const config_setting_t *at = sl->dest_settings[j];
		enum relation rel;
		bool via;

		if (pair->source != NULL && pair->dest_remotes[j] == NULL) {
			const config_setting_t *later =
			    later_setting(ld, sl->source_setting, at);

			rel = relate_refs(&dst, &src, &via);
			if (rel == REL_SAME || rel == REL_A_INSIDE_B)
				report_overlap(ld, later, sl->label,
				    "destination", &dst, rel, "its source",
				    &src, "", via);
			else if (rel == REL_B_INSIDE_A)
				report_overlap(ld, later, sl->label, "source",
				    &src, REL_A_INSIDE_B, "its destination",
				    &dst, "", via);
		}
		for (k = 0; k < j; k++) {
			struct path_ref prev = { pair->destinations[k],
			    sl->dest_real[k] };
			int line = line_of(ld, sl->dest_settings[k]);

			rel = relate_refs(&dst, &prev, &via);
			if (rel == REL_NONE)
				continue;
			if (rel == REL_SAME && !via) {
				report(ld, at, "%s: destination '%s' is listed "
				    "twice (also at line %d)", sl->label,
				    dst.path, line);
			} else {
				snprintf(where, sizeof where, " of the same "
				    "sync (line %d)", line);
				report_overlap(ld, at, sl->label, "destination",
				    &dst, rel, "destination", &prev, where,
				    via);
			}
		}
	}
}

/* Sync j against an earlier sync i: no shared or nested destinations. */
static int
check_cross_overlaps(struct loader *ld, size_t i, size_t j)
{
	const SyncPairConfig *earlier = &ld->cfg->syncs[i];
	const SyncPairConfig *later = &ld->cfg->syncs[j];
	const struct sync_load *el = &ld->syncs[i], *ll = &ld->syncs[j];
	char *where = NULL;
	size_t a, b;
	int r = 0;

	for (b = 0; b < later->n_destinations; b++) {
		struct path_ref dst = { later->destinations[b], ll->dest_real[b] };
		const config_setting_t *at = ll->dest_settings[b];

		for (a = 0; a < earlier->n_destinations; a++) {
			struct path_ref other = { earlier->destinations[a],
			    el->dest_real[a] };
			int line = line_of(ld, el->dest_settings[a]);
			enum relation rel;
			bool via;

			rel = relate_refs(&dst, &other, &via);
			if (rel == REL_NONE)
				continue;
			if (rel == REL_SAME && !via) {
				report(ld, at, "%s: destination '%s' is also "
				    "written by %s (line %d); two syncs may "
				    "not share a destination", ll->label,
				    dst.path, el->label, line);
				continue;
			}
			free(where);
			if (asprintf(&where, " of %s (line %d)", el->label,
			    line) < 0) {
				where = NULL;
				r = -ENOMEM;
				goto out;
			}
			report_overlap(ld, at, ll->label, "destination", &dst,
			    rel, "destination", &other, where, via);
		}
	}
out:
	free(where);
	return r;
}

static int
check_overlaps(struct loader *ld)
{
	size_t i, j;
	int r;

	r = resolve_syncs(ld);
	if (r < 0)
		goto out;
	for (j = 0; j < ld->cfg->n_syncs; j++) {
		check_sync_overlaps(ld, j);
		for (i = 0; i < j; i++) {
			r = check_cross_overlaps(ld, i, j);
			if (r < 0)
				goto out;
		}
	}
out:
	return r;
}

static void
loader_free(struct loader *ld)
{
	size_t i, j;

	if (ld->syncs != NULL) {
		for (i = 0; i < ld->cfg->n_syncs; i++) {
			struct sync_load *sl = &ld->syncs[i];

			free(sl->label);
			free(sl->prefix);
			free(sl->dest_settings);
			free(sl->source_real);
			if (sl->dest_real != NULL)
				for (j = 0; j < ld->cfg->syncs[i].n_destinations;
				    j++)
					free(sl->dest_real[j]);
			free(sl->dest_real);
		}
		free(ld->syncs);
	}
	problems_free(&ld->pb);
	free(ld->text);
}

/* Opens path the way libconfig will, to learn the errno it does not keep. */
static int
check_readable(const char *path)
{
	struct stat st;
	FILE *f;
	int r = 0;

	f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	if (fstat(fileno(f), &st) < 0)
		r = -errno;
	else if (S_ISDIR(st.st_mode))
		r = -EISDIR;
	fclose(f);
	return r;
}

int
config_load(const char *path, Config **ret, char **errors)
{
	struct loader ld = { .path = path, .pb = { .path = path } };
	bool parsed = false;
	config_t lc;
	int r;

	*errors = NULL;
	r = check_readable(path);
	if (r < 0) {
		report(&ld, NULL, "cannot read: %s", strerror(-r));
		goto out;
	}
	config_init(&lc);
	parsed = true;
	if (!config_read_file(&lc, path)) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
			r = -EIO;
			report(&ld, NULL, "cannot read: %s",
			    config_error_text(&lc));
		} else {
			r = -EINVAL;
			problems_add(&ld.pb, config_error_file(&lc),
			    config_error_line(&lc), "syntax error: %s",
			    config_error_text(&lc));
		}
		goto out;
	}
	ld.cfg = calloc(1, sizeof *ld.cfg);
	if (ld.cfg == NULL) {
		r = -ENOMEM;
		goto out;
	}
	ld.cfg->workers = CONFIG_DEFAULT_WORKERS;
	ld.cfg->delay_ms = CONFIG_DEFAULT_DELAY_MS;
	ld.cfg->log_level = LOG_LEVEL_INFO;
	ld.cfg->watch = WATCH_AUTO;
	ld.cfg->path = strdup(path);
	ld.cfg->control_socket = strdup(CONFIG_DEFAULT_SOCKET);
	if (ld.cfg->path == NULL || ld.cfg->control_socket == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = load_globals(&ld, config_root_setting(&lc));
	if (r < 0)
		goto out;
	r = check_overlaps(&ld);
	if (r < 0)
		goto out;
	if (ld.pb.oom)
		r = -ENOMEM;
	else if (ld.pb.n > 0)
		r = -EINVAL;
out:
	if (r < 0)
		*errors = problems_join(&ld.pb);
	loader_free(&ld);
	if (r == 0)
		*ret = ld.cfg;
	else
		config_free(ld.cfg);
	if (parsed)
		config_destroy(&lc);
	return r;
}

static void
check_add(void *ctx, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problems_vadd(ctx, NULL, line, fmt, ap);
	va_end(ap);
}

int
config_check_sources(const Config *cfg, char **errors)
{
	struct problems pb = { .path = cfg->path };
	struct stat st;
	size_t i;
	int r = 0;

	*errors = NULL;
	for (i = 0; i < cfg->n_syncs; i++) {
		const SyncPairConfig *pair = &cfg->syncs[i];
		const char *reason = NULL;

		if (stat(pair->source, &st) < 0)
			reason = strerror(errno);
		else if (!S_ISDIR(st.st_mode))
			reason = strerror(ENOTDIR);
		if (reason != NULL)
			problems_add(&pb, NULL, pair->source_line,
			    "sync '%s': source '%s': %s", pair->name,
			    pair->source, reason);
	}
	config_remotes_check_files(cfg, check_add, &pb);
	if (pb.oom)
		r = -ENOMEM;
	else if (pb.n > 0)
		r = -EINVAL;
	if (r < 0)
		*errors = problems_join(&pb);
	problems_free(&pb);
	return r;
}

const SyncPairConfig *
config_find_sync(const Config *cfg, const char *name)
{
	size_t i;

	if (cfg == NULL || name == NULL)
		return NULL;
	for (i = 0; i < cfg->n_syncs; i++)
		if (strcmp(cfg->syncs[i].name, name) == 0)
			return &cfg->syncs[i];
	return NULL;
}

void
config_free(Config *cfg)
{
	size_t i, j;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n_syncs; i++) {
		SyncPairConfig *pair = &cfg->syncs[i];

		free(pair->name);
		free(pair->source);
		for (j = 0; j < pair->n_destinations; j++)
			free(pair->destinations[j]);
		free(pair->destinations);
		free(pair->dest_remotes);
		exclude_free(pair->exclude);
	}
	free(cfg->syncs);
	config_remotes_free(cfg);
	free(cfg->path);
	free(cfg->log_file);
	free(cfg->control_socket);
	free(cfg->control_socket_group);
	free(cfg->metrics_listen);
	free(cfg);
}
