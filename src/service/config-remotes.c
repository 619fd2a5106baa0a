/*
 * config-remotes — see config-remotes.h.
 *
 *   remotes = ( { name = "web2"; host = "web2.example.net"; port = 22;
 *                 user = "tsync"; identity = "/etc/treesync/keys/web2";
 *                 known_hosts = "/etc/treesync/known_hosts";
 *                 bwlimit = "20M"; timeout = 30; } );
 *
 * host and user go to ssh's command line as words of their own, after
 * "-l" and as the destination: a leading '-' would be read as an option,
 * so only the characters of host names, addresses and user names pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-remotes.h"
#include "dest/rsync-filter.h"

#define REMOTE_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define HOST_CHARS REMOTE_NAME_CHARS ":"
#define REMOTE_NAME_MAX 32
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600
/* ssh appends ".XXXXXXXXXXXXXXXX" to the path while it binds, and a
 * socket path holds 107 bytes. */
#define CONTROL_PATH_MAX 88

static const char *const remote_keys[] = {
	"name", "host", "port", "user", "identity", "known_hosts", "bwlimit",
	"timeout", NULL,
};


static bool
is_remote_key(const char *key)
{
	for (size_t i = 0; remote_keys[i] != NULL; i++)
		if (strcmp(key, remote_keys[i]) == 0)
			return true;
	return false;
}

/* A string of chars, not empty, not starting with '-'; NULL otherwise
 * (reported). */
static const char *
get_word_of(struct loader *ld, const config_setting_t *s,
    const char *label, const char *chars, const char *what)
{
	const char *w;
	char got[160];

	diag_describe(ld, s, got, sizeof got);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		diag_report(ld, s, "%s: %s: must be a string holding %s, got %s", label,
		    config_setting_name(s), what, got);
		return NULL;
	}
	w = config_setting_get_string(s);
	if (w[0] == '\0' || w[0] == '-' || w[strspn(w, chars)] != '\0') {
		diag_report(ld, s, "%s: %s: must be %s (not empty, no leading '-'), got "
		    "%s", label, config_setting_name(s), what, got);
		return NULL;
	}
	return w;
}

static int
get_file(struct loader *ld, const config_setting_t *s, const char *label,
    char **out, int *line)
{
	char got[160];
	int r;

	diag_describe(ld, s, got, sizeof got);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		diag_report(ld, s, "%s: %s: must be a string holding an absolute path, "
		    "got %s", label, config_setting_name(s), got);
		return 0;
	}
	r = config_normalize_path(config_setting_get_string(s), out);
	if (r < 0)
		return r;
	if (r != 0) {
		diag_report(ld, s, "%s: %s: must be an absolute path without '..', got "
		    "%s", label, config_setting_name(s), got);
		*out = NULL;
		return 0;
	}
	*line = diag_line_of(ld, s);
	return 0;
}

static int
get_int(struct loader *ld, const config_setting_t *s, const char *label,
    long long min, long long max, int *out)
{
	char got[160];
	long long n;

	diag_describe(ld, s, got, sizeof got);
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		diag_report(ld, s, "%s: %s: must be an integer from %lld to %lld, got %s",
		    label, config_setting_name(s), min, max, got);
		return 0;
	}
	n = config_setting_get_int64(s);
	if (n < min || n > max) {
		diag_report(ld, s, "%s: %s: must be an integer from %lld to %lld, got %s",
		    label, config_setting_name(s), min, max, got);
		return 0;
	}
	*out = (int)n;
	return 0;
}

/* bwlimit: bytes per second as an integer, or "20M", "512K", "1G"
 * (powers of 1024); rsync takes KiB/s, at least 1. */
static void
get_bwlimit(struct loader *ld, const config_setting_t *s,
    const char *label, unsigned long long *kib)
{
	static const char expected[] = "bytes per second, as an integer or "
	    "a string such as \"512K\", \"20M\", \"1G\" (at least 1K)";
	unsigned long long n, mult = 1;
	const char *t;
	char *end, got[160];

	diag_describe(ld, s, got, sizeof got);
	if (config_setting_type(s) == CONFIG_TYPE_INT ||
	    config_setting_type(s) == CONFIG_TYPE_INT64) {
		long long x = config_setting_get_int64(s);

		if (x < 1024)
			goto bad;
		*kib = (unsigned long long)x / 1024;
		return;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		goto bad;
	t = config_setting_get_string(s);
	if (t[0] < '0' || t[0] > '9')
		goto bad;
	errno = 0;
	n = strtoull(t, &end, 10);
	if (errno != 0)
		goto bad;
	if (strcmp(end, "K") == 0 || strcmp(end, "k") == 0)
		mult = 1024;
	else if (strcmp(end, "M") == 0 || strcmp(end, "m") == 0)
		mult = 1024ull * 1024;
	else if (strcmp(end, "G") == 0 || strcmp(end, "g") == 0)
		mult = 1024ull * 1024 * 1024;
	else if (*end != '\0')
		goto bad;
	if (n == 0 || n > (1ull << 40) / mult || n * mult < 1024)
		goto bad;
	*kib = n * mult / 1024;
	return;
bad:
	diag_report(ld, s, "%s: bwlimit: must be %s, got %s", label, expected, got);
}

static const RemoteConfig *
find_remote(const Config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->n_remotes; i++)
		if (cfg->remotes[i].name != NULL &&
		    strlen(cfg->remotes[i].name) == len &&
		    strncmp(cfg->remotes[i].name, name, len) == 0)
			return &cfg->remotes[i];
	return NULL;
}

static int
load_name(struct loader *ld, const config_setting_t *g, size_t number,
    Config *cfg, RemoteConfig *rc, char *label, size_t size)
{
	const config_setting_t *s = config_setting_get_member(g, "name");
	const char *name;

	snprintf(label, size, "remote #%zu", number);
	if (s == NULL) {
		diag_report(ld, g, "%s: missing required key 'name'", label);
		return 0;
	}
	name = get_word_of(ld, s, label, REMOTE_NAME_CHARS, "a name of "
	    "letters, digits, '.', '_' and '-'");
	if (name == NULL)
		return 0;
	if (strlen(name) > REMOTE_NAME_MAX) {
		diag_report(ld, s, "%s: name: at most %d characters, got \"%s\"", label,
		    REMOTE_NAME_MAX, name);
		return 0;
	}
	if (find_remote(cfg, name, strlen(name)) != NULL) {
		diag_report(ld, s, "%s: name: '%s' is already the name of the remote "
		    "at line %d; names must be unique", label, name,
		    find_remote(cfg, name, strlen(name))->line);
		return 0;
	}
	snprintf(label, size, "remote '%s'", name);
	rc->name = strdup(name);
	return rc->name == NULL ? -ENOMEM : 0;
}

/* One setting of a remote group. */
static int
load_key(struct loader *ld, const config_setting_t *s, RemoteConfig *rc,
    const char *label)
{
	const char *key = config_setting_name(s), *w;
	int r = 0;

	if (strcmp(key, "host") == 0) {
		w = get_word_of(ld, s, label, HOST_CHARS, "a host name or "
		    "address");
		if (w != NULL && (rc->host = strdup(w)) == NULL)
			r = -ENOMEM;
	} else if (strcmp(key, "user") == 0) {
		w = get_word_of(ld, s, label, REMOTE_NAME_CHARS, "a user name");
		if (w != NULL && (rc->user = strdup(w)) == NULL)
			r = -ENOMEM;
	} else if (strcmp(key, "port") == 0) {
		r = get_int(ld, s, label, 1, 65535, &rc->port);
	} else if (strcmp(key, "timeout") == 0) {
		r = get_int(ld, s, label, 1, MAX_TIMEOUT_S, &rc->timeout_s);
	} else if (strcmp(key, "identity") == 0) {
		r = get_file(ld, s, label, &rc->identity, &rc->identity_line);
	} else if (strcmp(key, "known_hosts") == 0) {
		r = get_file(ld, s, label, &rc->known_hosts,
		    &rc->known_hosts_line);
	} else if (strcmp(key, "bwlimit") == 0) {
		get_bwlimit(ld, s, label, &rc->bwlimit_kib);
	}
	return r;
}

static int
load_remote(struct loader *ld, const config_setting_t *g, size_t number,
    Config *cfg)
{
	RemoteConfig *rc = &cfg->remotes[cfg->n_remotes];
	char label[64];
	int n, r;

	rc->port = 22;
	rc->timeout_s = DEFAULT_TIMEOUT_S;
	rc->line = diag_line_of(ld, g);
	if ((r = load_name(ld, g, number, cfg, rc, label, sizeof label)) < 0)
		return r;
	/* Counted once named: destinations find it by name. */
	cfg->n_remotes++;
	n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);
		const char *key = config_setting_name(s);

		if (!is_remote_key(key))
			diag_report(ld, s, "%s: unknown key '%s' (a remote has: name, "
			    "host, port, user, identity, known_hosts, bwlimit, "
			    "timeout)", label, key);
		else if ((r = load_key(ld, s, rc, label)) < 0)
			return r;
	}
	if (rc->host == NULL && config_setting_get_member(g, "host") == NULL)
		diag_report(ld, g, "%s: missing required key 'host'", label);
	if (rc->identity == NULL &&
	    config_setting_get_member(g, "identity") == NULL)
		diag_report(ld, g, "%s: missing required key 'identity' (the private "
		    "key: remote hosts are reached with a key only)", label);
	if (rc->known_hosts == NULL &&
	    config_setting_get_member(g, "known_hosts") == NULL)
		diag_report(ld, g, "%s: missing required key 'known_hosts' (the file "
		    "that pins the host's key; a host whose key it does not "
		    "hold is refused)", label);
	return 0;
}

static int remotes_finish(struct loader *ld, Config *cfg);

int
config_remotes_load(struct loader *ld, const config_setting_t *s)
{
	Config *cfg = ld->cfg;
	char got[160];
	int n, r = 0;

	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "remotes: must be a list of remote groups, remotes = "
		    "( { name = ...; host = ...; identity = ...; known_hosts = "
		    "...; } ), got %s", got);
		return 0;
	}
	n = config_setting_length(s);
	cfg->remotes = calloc(n > 0 ? (size_t)n : 1, sizeof *cfg->remotes);
	if (cfg->remotes == NULL)
		return -ENOMEM;
	for (int i = 0; i < n && r == 0; i++) {
		const config_setting_t *g = config_setting_get_elem(s, i);

		if (!config_setting_is_group(g)) {
			diag_describe(ld, g, got, sizeof got);
			diag_report(ld, g, "remotes: entry %d: must be a group { name = "
			    "...; host = ...; ... }, got %s", i + 1, got);
			continue;
		}
		r = load_remote(ld, g, (size_t)i + 1, cfg);
	}
	return r < 0 ? r : remotes_finish(ld, cfg);
}

/* Each remote's control socket beside the control socket (too long a
 * path is a problem at the remote). */
static int
remotes_finish(struct loader *ld, Config *cfg)
{
	const char *sock = cfg->control_socket;
	const char *slash = sock != NULL ? strrchr(sock, '/') : NULL;
	int dir_len = slash != NULL && slash != sock ? (int)(slash - sock) : 0;

	for (size_t i = 0; i < cfg->n_remotes; i++) {
		RemoteConfig *rc = &cfg->remotes[i];

		if (rc->name == NULL)
			continue;
		if (asprintf(&rc->control_path, "%.*s/ssh-%s", dir_len,
		    sock != NULL ? sock : "", rc->name) < 0) {
			rc->control_path = NULL;
			return -ENOMEM;
		}
		if (strlen(rc->control_path) > CONTROL_PATH_MAX)
			diag_report(ld, NULL, "remote '%s' (line %d): its ssh control "
			    "socket '%s' would be too long (at most %d bytes; "
			    "it lies beside control_socket: choose a shorter "
			    "directory or remote name)", rc->name, rc->line,
			    rc->control_path, CONTROL_PATH_MAX);
	}
	return 0;
}

int
config_remote_destination(struct loader *ld, const config_setting_t *e,
    const char *prefix, const char *what, char **path,
    const RemoteConfig **remote)
{
	const Config *cfg = ld->cfg;
	const char *text, *colon;
	char got[160], *norm = NULL;
	int r;

	*path = NULL;
	*remote = NULL;
	if (config_setting_type(e) != CONFIG_TYPE_STRING)
		return 0;
	text = config_setting_get_string(e);
	colon = strchr(text, ':');
	if (text[0] == '/' || colon == NULL || colon == text ||
	    memchr(text, '/', (size_t)(colon - text)) != NULL)
		return 0;
	diag_describe(ld, e, got, sizeof got);
	*remote = find_remote(cfg, text, (size_t)(colon - text));
	if (*remote == NULL) {
		diag_report(ld, e, "%s%s: '%.*s' is not a remote declared in 'remotes' "
		    "(a remote destination is \"NAME:/absolute/path\"), got %s",
		    prefix, what, (int)(colon - text), text, got);
		return 1;
	}
	r = config_normalize_path(colon + 1, &norm);
	if (r < 0)
		return r;
	if (r != 0 || strcmp(norm, "/") == 0) {
		diag_report(ld, e, "%s%s: the path on remote '%s' must be absolute, "
		    "without '..', and not '/' itself, got %s", prefix, what,
		    (*remote)->name, got);
		free(norm);
		*remote = NULL;
		return 1;
	}
	if (asprintf(path, "%s:%s", (*remote)->name, norm) < 0) {
		*path = NULL;
		r = -ENOMEM;
	}
	free(norm);
	return r < 0 ? r : 1;
}

void
config_remotes_check_excludes(struct loader *ld,
    const config_setting_t *group, const SyncPairConfig *pair,
    const char *label)
{
	const config_setting_t *ex = config_setting_get_member(group,
	    "exclude");
	bool remote = false;
	char rule[8192];

	for (size_t j = 0; j < pair->n_destinations; j++)
		remote = remote || (pair->dest_remotes != NULL &&
		    pair->dest_remotes[j] != NULL);
	if (!remote || ex == NULL || (!config_setting_is_list(ex) &&
	    !config_setting_is_array(ex)))
		return;
	for (int i = 0; i < config_setting_length(ex); i++) {
		const config_setting_t *e = config_setting_get_elem(ex, i);
		const char *pat;
		int r;

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			continue;
		pat = config_setting_get_string(e);
		r = rsync_filter_rule(pat, rule, sizeof rule);
		if (r == -ENOTSUP)
			diag_report(ld, e, "%s: exclude: entry %d: rsync cannot be told "
			    "this pattern (collating symbols, equivalence "
			    "classes and newlines have no rsync form), and the "
			    "sync has a remote destination", label, i + 1);
		else if (r == -ENOSPC)
			diag_report(ld, e, "%s: exclude: entry %d: too long for an rsync "
			    "filter rule", label, i + 1);
		else if (r < 0 && pat[0] != '\0' &&
		    pat[strspn(pat, "/")] != '\0')
			/* Empty and only-'/' patterns have their own message. */
			diag_report(ld, e, "%s: exclude: entry %d: not a valid pattern "
			    "for rsync (an invalid character class?)", label,
			    i + 1);
	}
}

/* 0 or the errno of opening path for reading. */
static int
readable(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r = 0;

	if (fd < 0)
		return errno;
	if (fstat(fd, st) < 0)
		r = errno;
	else if (S_ISDIR(st->st_mode))
		r = EISDIR;
	close(fd);
	return r;
}

void
config_remotes_check_files(const Config *cfg, struct problems *pb)
{
	for (size_t i = 0; i < cfg->n_remotes; i++) {
		const RemoteConfig *rc = &cfg->remotes[i];
		struct stat st;
		int e;

		if (rc->identity != NULL &&
		    (e = readable(rc->identity, &st)) != 0)
			diag_add(pb, NULL, rc->identity_line, "remote '%s': identity "
			    "'%s': %s", rc->name, rc->identity, strerror(e));
		else if (rc->identity != NULL && st.st_uid == geteuid() &&
		    (st.st_mode & 077) != 0)
			/* ssh ignores such a key ("UNPROTECTED PRIVATE KEY
			 * FILE"). */
			diag_add(pb, NULL, rc->identity_line, "remote '%s': identity "
			    "'%s': mode %04o lets others read it; ssh refuses "
			    "such a key (chmod 600 it)", rc->name, rc->identity,
			    (unsigned)(st.st_mode & 07777));
		if (rc->known_hosts != NULL &&
		    (e = readable(rc->known_hosts, &st)) != 0)
			diag_add(pb, NULL, rc->known_hosts_line, "remote '%s': "
			    "known_hosts '%s': %s", rc->name, rc->known_hosts,
			    strerror(e));
	}
}

static bool
same_str(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

bool
config_remote_same(const RemoteConfig *a, const RemoteConfig *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return same_str(a->name, b->name) && same_str(a->host, b->host) &&
	    a->port == b->port && same_str(a->user, b->user) &&
	    same_str(a->identity, b->identity) &&
	    same_str(a->known_hosts, b->known_hosts) &&
	    a->bwlimit_kib == b->bwlimit_kib && a->timeout_s == b->timeout_s &&
	    same_str(a->control_path, b->control_path);
}

/* A sync's destinations: local paths, or "NAME:/path" on a remote. */
int
config_load_destinations(struct loader *ld, const config_setting_t *s,
    SyncPairConfig *pair, struct sync_load *sl)
{
	const char *prefix = sl->prefix;
	char what[64], got[160];
	int i, n, r = 0;

	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		diag_describe(ld, s, got, sizeof got);
		diag_report(ld, s, "%sdestinations: must be a list of absolute paths, "
		    "e.g. ( \"/backup/projects\" ), got %s", prefix, got);
		goto out;
	}
	n = config_setting_length(s);
	if (n == 0) {
		diag_report(ld, s, "%sdestinations: must hold at least one path",
		    prefix);
		goto out;
	}
	pair->destinations = calloc((size_t)n, sizeof *pair->destinations);
	pair->destination_lines = calloc((size_t)n,
	    sizeof *pair->destination_lines);
	pair->dest_remotes = calloc((size_t)n, sizeof *pair->dest_remotes);
	sl->dest_settings = calloc((size_t)n, sizeof *sl->dest_settings);
	if (pair->destinations == NULL || sl->dest_settings == NULL ||
	    pair->destination_lines == NULL || pair->dest_remotes == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		char *path;

		snprintf(what, sizeof what, "destinations: entry %d", i + 1);
		/* "NAME:/path" names a remote (config-remotes.c). */
		r = config_remote_destination(ld, e, prefix, what, &path,
		    &pair->dest_remotes[pair->n_destinations]);
		if (r == 0)
			r = config_get_path(ld, e, prefix, what, &path);
		if (r < 0)
			goto out;
		if (path == NULL)
			continue;
		sl->dest_settings[pair->n_destinations] = e;
		pair->destination_lines[pair->n_destinations] =
		    diag_line_of(ld, e);
		pair->destinations[pair->n_destinations++] = path;
	}
out:
	return r;
}

void
config_remotes_free(Config *cfg)
{
	for (size_t i = 0; i < cfg->n_syncs; i++)
		free(cfg->syncs[i].dest_remotes);
	for (size_t i = 0; i < cfg->n_remotes; i++) {
		RemoteConfig *rc = &cfg->remotes[i];

		free(rc->name);
		free(rc->host);
		free(rc->user);
		free(rc->identity);
		free(rc->known_hosts);
		free(rc->control_path);
	}
	free(cfg->remotes);
	cfg->remotes = NULL;
	cfg->n_remotes = 0;
}
