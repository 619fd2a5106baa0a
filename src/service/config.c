/*
 * config — see include/service/config.h; the module's files are listed in
 * config-int.h.
 *
 * Loading is one pass over the libconfig tree that fills a Config and
 * records every problem with the file and line of the offending setting,
 * then a pass over the finished syncs for the rules that involve two paths
 * (config-check.c). Messages are made in config-diag.c.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <libconfig.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "config-int.h"
#include "config-remotes.h"

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

const char *const config_global_keys[] = {
	"workers", "delay_ms", "log_file", "log_level", "control_socket",
	"control_socket_group", "metrics_listen",
	"max_delete", "watch", "syncs", "remotes", NULL,
};

const char *const config_sync_keys[] = {
	"name", "source", "destinations", "exclude", "delete", "compare",
	"max_delete", NULL,
};

enum {
	PATH_OK = 0,
	PATH_RELATIVE,
	PATH_DOTDOT,
};


/*
 * Collapses "//" and "/./" and drops a trailing '/'. A ".." is refused
 * rather than folded away: lexically "/a/link/.." is "/a", but the kernel
 * resolves it through the symlink, so folding it would hide what the path
 * names.
 */
int
config_normalize_path(const char *in, char **out)
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
int
config_get_path(struct loader *ld, const config_setting_t *s, const char *prefix,
    const char *what, char **out)
{
	char got[160];
	int r;

	*out = NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "%s%s: must be a string holding an absolute path, "
		    "got %s", prefix, what, got);
		return 0;
	}
	r = config_normalize_path(config_setting_get_string(s), out);
	if (r < 0)
		return r;
	if (r != PATH_OK)
		diag_describe(ld, s, got, sizeof got);
	if (r == PATH_RELATIVE)
		diag_report(ld, s, "%s%s: must be an absolute path (starting with "
		    "'/'), got %s", prefix, what, got);
	else if (r == PATH_DOTDOT)
		diag_report(ld, s, "%s%s: must not contain a '..' component (it "
		    "would be resolved through symlinks; write the real path), "
		    "got %s", prefix, what, got);
	return 0;
}


static void
get_int_range(struct loader *ld, const config_setting_t *s, int min, int max,
    int *out)
{
	const char *key = config_setting_name(s);
	char got[160], digits[64] = "";
	long long v;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "%s: must be an integer from %d to %d, got %s",
		    key, min, max, got);
		return;
	}
	/* As written: libconfig may have kept it wrapped. */
	if (diag_integer(ld, s, &v, digits, sizeof digits) == -ERANGE) {
		diag_report(ld, s, "%s: must be an integer from %d to %d, got "
		    "%s (out of range)", key, min, max, digits);
		return;
	}
	if (v < min || v > max) {
		if (digits[0] == '\0')
			snprintf(digits, sizeof digits, "%lld", v);
		diag_report(ld, s, "%s: must be an integer from %d to %d, got "
		    "%s (out of range)", key, min, max, digits);
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
	diag_describe(ld, s, got, sizeof got);
	diag_report(ld, s, "%s%s: must be %s, got %s", prefix, config_setting_name(s),
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
	char got[160], digits[64];
	const char *text;
	char *end;
	unsigned long long v;

	if (config_setting_type(s) == CONFIG_TYPE_INT ||
	    config_setting_type(s) == CONFIG_TYPE_INT64) {
		long long n;

		if (diag_integer(ld, s, &n, digits, sizeof digits) == -ERANGE) {
			diag_report(ld, s, "%smax_delete: a count must be from 0 "
			    "to %lld, got %s (out of range)", prefix, LLONG_MAX,
			    digits);
			return;
		}
		if (n < 0) {
			diag_report(ld, s, "%smax_delete: must be %s, got %lld",
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
		diag_report(ld, s, "%smax_delete: a percentage must be from 0%% to "
		    "100%%, got \"%s\"", prefix, text);
		return;
	}
	out->kind = MAX_DELETE_PERCENT;
	out->value = v;
	return;
bad:
	diag_describe(ld, s, got, sizeof got);
	diag_report(ld, s, "%smax_delete: must be %s, got %s", prefix, expected,
	    got);
}


/*
 * A word setting whose value parse() knows (a log level, a watch mode):
 * its value, or -1 with the line reported.
 */
static int
load_choice(struct loader *ld, const config_setting_t *s, const char *key,
    const char *expected, int (*parse)(const char *))
{
	const char *word = get_word(ld, s, "", expected);
	char got[160];
	int v;

	if (word == NULL)
		return -1;
	if ((v = parse(word)) < 0) {
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "%s: must be %s, got %s", key, expected, got);
	}
	return v;
}

static void
load_log_level(struct loader *ld, const config_setting_t *s)
{
	int v = load_choice(ld, s, "log_level",
	    "one of \"error\", \"warn\", \"info\", \"debug\"",
	    synclog_level_from_string);

	if (v >= 0)
		ld->cfg->log_level = (LogLevel)v;
}

static void
load_watch(struct loader *ld, const config_setting_t *s)
{
	int v = load_choice(ld, s, "watch",
	    "one of \"auto\", \"inotify\", \"fanotify\"",
	    watcher_mode_from_string);

	if (v >= 0)
		ld->cfg->watch = (WatchMode)v;
}

static int
load_control_socket(struct loader *ld, const config_setting_t *s)
{
	char *path = NULL;
	int r;

	r = config_get_path(ld, s, "", "control_socket", &path);
	if (r < 0 || path == NULL)
		goto out;
	if (strlen(path) > SOCKET_PATH_MAX) {
		diag_report(ld, s, "control_socket: '%s' is too long for a Unix "
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
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "control_socket_group: must be the name of a "
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
		diag_quote(name, got, sizeof got);
		diag_report(ld, s, "control_socket_group: %s%s (create it with "
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
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "metrics_listen: must be \"ADDR:PORT\": a numeric "
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
		diag_report(ld, group, "%s: missing required key 'name'", sl->label);
		goto out;
	}
	diag_describe(ld, s, got, sizeof got);
	if (name == NULL)
		diag_report(ld, s, "%s: name: must be a string of %s, got %s",
		    sl->label, allowed, got);
	else if (name[0] == '\0')
		diag_report(ld, s, "%s: name: must not be empty", sl->label);
	else if (name[0] == '-')
		diag_report(ld, s, "%s: name: must not start with '-' (treesyncctl "
		    "would take it for an option), got %s", sl->label, got);
	else if (pair->name == NULL)
		diag_report(ld, s, "%s: name: may hold only %s, got %s", sl->label,
		    allowed, got);
	if (pair->name == NULL)
		goto out;
	for (i = 0; ld->syncs + i != sl; i++) {
		const SyncPairConfig *other = &ld->cfg->syncs[i];

		if (other->name != NULL && strcmp(other->name, name) == 0) {
			diag_report(ld, s, "%s: name: '%s' is already the name of the "
			    "sync at line %d; names must be unique", sl->label,
			    name, other->line);
			break;
		}
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
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "%s: exclude: must be a list of shell patterns, "
		    "e.g. ( \"*.swp\", \".git/\" ), got %s", sl->label, got);
		goto out;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);

		diag_describe(ld, e, got, sizeof got);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			diag_report(ld, e, "%s: exclude: entry %d: must be a string "
			    "holding a shell pattern, got %s", sl->label, i + 1,
			    got);
			continue;
		}
		r = exclude_add(pair->exclude, config_setting_get_string(e));
		if (r == -EINVAL) {
			diag_report(ld, e, "%s: exclude: entry %d: a pattern may not "
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
	pair->line = diag_line_of(ld, group);
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
			r = config_get_path(ld, s, prefix, "source", &pair->source);
			if (pair->source != NULL) {
				pair->source_line = diag_line_of(ld, s);
				sl->source_setting = s;
			}
		} else if (strcmp(key, "destinations") == 0) {
			seen_destinations = true;
			r = config_load_destinations(ld, s, pair, sl);
		} else if (strcmp(key, "exclude") == 0) {
			r = load_exclude(ld, s, pair, sl);
		} else if (strcmp(key, "delete") == 0) {
			if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
				pair->delete = config_setting_get_bool(s);
			} else {
				diag_describe(ld, s, got, sizeof got);
				diag_report(ld, s, "%sdelete: must be true or false, "
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
				diag_describe(ld, s, got, sizeof got);
				diag_report(ld, s, "%scompare: must be %s, got %s",
				    prefix, expected, got);
			}
		} else if (strcmp(key, "max_delete") == 0) {
			load_max_delete(ld, s, prefix, &pair->max_delete);
		} else {
			diag_unknown_key(ld, s, sl->label);
		}
		if (r < 0)
			goto out;
	}
	if (!seen_source)
		diag_report(ld, group, "%s: missing required key 'source'",
		    sl->label);
	if (!seen_destinations)
		diag_report(ld, group, "%s: missing required key 'destinations'",
		    sl->label);
	config_remotes_check_excludes(ld, group, pair, sl->label);
out:
	return r;
}


static int
load_syncs(struct loader *ld, const config_setting_t *s)
{
	char got[160];
	int i, n, r = 0;

	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "syncs: must be a list of sync groups, "
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
			diag_describe(ld, e, got, sizeof got);
			diag_report(ld, e, "syncs: entry %d: must be a group "
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
			r = config_get_path(ld, s, "", "log_file", &ld->cfg->log_file);
			ld->cfg->log_file_line = diag_line_of(ld, s);
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
			diag_unknown_key(ld, s, NULL);
		}
		if (r < 0)
			goto out;
	}
	if (remotes != NULL && (r = config_remotes_load(ld, remotes)) < 0)
		goto out;
	if (syncs == NULL)
		diag_report(ld, NULL, "missing required key 'syncs' (a list of sync "
		    "groups)");
	else
		r = load_syncs(ld, syncs);
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
	diag_free(&ld->pb);
	diag_texts_free(ld);
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
		diag_report(&ld, NULL, "cannot read: %s", strerror(-r));
		goto out;
	}
	config_init(&lc);
	parsed = true;
	if (!config_read_file(&lc, path)) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
			r = -EIO;
			diag_report(&ld, NULL, "cannot read: %s",
			    config_error_text(&lc));
		} else {
			r = -EINVAL;
			diag_parse_error(&ld, &lc);
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
	r = config_check_overlaps(&ld);
	if (r < 0)
		goto out;
	if (ld.pb.oom)
		r = -ENOMEM;
	else if (ld.pb.n > 0)
		r = -EINVAL;
out:
	if (r < 0)
		*errors = diag_join(&ld.pb);
	loader_free(&ld);
	if (r == 0)
		*ret = ld.cfg;
	else
		config_free(ld.cfg);
	if (parsed)
		config_destroy(&lc);
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
		free(pair->destination_lines);
		exclude_free(pair->exclude);
	}
	config_remotes_free(cfg);	/* it reads the syncs */
	free(cfg->syncs);
	free(cfg->path);
	free(cfg->log_file);
	free(cfg->control_socket);
	free(cfg->control_socket_group);
	free(cfg->metrics_listen);
	free(cfg);
}

