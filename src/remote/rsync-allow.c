/*
 * rsync-allow — see include/remote/rsync-allow.h.
 *
 * The forms accepted are the ones rsync's server_options() writes for a
 * push (measured with rsync 3.5.0; 3.2.x writes the same options): one
 * cluster of short options with the protocol's "-e.CAPS" capability tail,
 * then long options, some with their value in the next word, then "."
 * and the destination. Order is not checked, since versions differ in it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest/remote-proto.h"
#include "remote/rsync-allow.h"

/*
 * The short options a receiver may get: n dry run, l H o g D t p A X r
 * (-aHAX and recursion), R (--relative, implied by --files-from), d
 * (--dirs), c (checksum compare), x (one file system), S (sparse), z
 * (compression), W (whole files), v (verbose).
 */
#define SHORT_ALLOWED "nlHogDtpAXrRdcxSzWv"

enum value_kind {
	V_NONE,		/* --flag */
	V_NUMBER,	/* --opt=N (N may be -1 where rsync writes it) */
	V_CHOICE,	/* --opt=ONE-OF-A-LIST */
	V_TEMP_DIR,	/* --temp-dir NAME or --temp-dir=NAME: a temporary */
	V_PARTIAL_DIR,	/* --partial-dir NAME: REMOTE_PROTO_PARTIAL_DIR only */
};

static const struct long_option {
	const char *name;
	enum value_kind kind;
	const char *choices;	/* V_CHOICE: "|a|b|c|" */
} long_options[] = {
	{ "delete", V_NONE, NULL },
	{ "delete-before", V_NONE, NULL },
	{ "delete-during", V_NONE, NULL },
	{ "delete-delay", V_NONE, NULL },
	{ "delete-after", V_NONE, NULL },
	{ "delete-missing-args", V_NONE, NULL },
	{ "force", V_NONE, NULL },
	{ "numeric-ids", V_NONE, NULL },
	{ "no-implied-dirs", V_NONE, NULL },
	{ "no-r", V_NONE, NULL },
	{ "fsync", V_NONE, NULL },
	{ "stats", V_NONE, NULL },
	{ "msgs2stderr", V_NONE, NULL },
	{ "no-msgs2stderr", V_NONE, NULL },
	{ "new-compress", V_NONE, NULL },
	{ "old-compress", V_NONE, NULL },
	{ "timeout", V_NUMBER, NULL },
	{ "bwlimit", V_NUMBER, NULL },
	{ "max-delete", V_NUMBER, NULL },
	{ "compress-level", V_NUMBER, NULL },
	{ "log-format", V_CHOICE, "|%i|%i%I|%o|X|" },
	{ "compress-choice", V_CHOICE, "|zstd|lz4|zlibx|zlib|none|" },
	{ "checksum-choice", V_CHOICE, "|xxh128|xxh3|xxh64|md5|md4|" },
	{ "temp-dir", V_TEMP_DIR, NULL },
	{ "partial-dir", V_PARTIAL_DIR, NULL },
};

static int
refuse(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -EPERM;
}

/* "-" then allowed letters, then optionally "e" DIGITS "." LETTERS. */
static bool
short_cluster_ok(const char *w, char *bad)
{
	const char *p = w + 1;

	if (*p == '\0')
		return false;
	for (; *p != '\0' && *p != 'e'; p++) {
		if (strchr(SHORT_ALLOWED, *p) == NULL) {
			*bad = *p;
			return false;
		}
	}
	if (*p == 'e') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
		if (*p++ != '.')
			return false;
		for (; *p != '\0'; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
				return false;
	}
	return true;
}

static bool
number_ok(const char *v, bool minus_one)
{
	if (minus_one && strcmp(v, "-1") == 0)
		return true;
	if (*v == '\0' || strlen(v) > 10)
		return false;
	for (; *v != '\0'; v++)
		if (*v < '0' || *v > '9')
			return false;
	return true;
}

static bool
choice_ok(const char *choices, const char *v)
{
	char needle[64];
	int n = snprintf(needle, sizeof needle, "|%s|", v);

	return n > 2 && (size_t)n < sizeof needle && strchr(v, '|') == NULL &&
	    strstr(choices, needle) != NULL;
}

static const struct long_option *
find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof long_options / sizeof long_options[0];
	    i++)
		if (strlen(long_options[i].name) == len &&
		    strncmp(long_options[i].name, name, len) == 0)
			return &long_options[i];
	return NULL;
}

/* One long option at words[*i]; advances *i past a separate value. */
static int
check_long(char *const *words, size_t n, size_t *i, RsyncRequest *out,
    char *why, size_t size)
{
	const char *w = words[*i], *name = w + 2, *eq, *value;
	const struct long_option *opt;

	eq = strchr(name, '=');
	opt = find_long(name, eq != NULL ? (size_t)(eq - name) : strlen(name));
	if (opt == NULL)
		return refuse(why, size, "option '%s' is not allowed", w);
	value = eq != NULL ? eq + 1 : NULL;
	switch (opt->kind) {
	case V_NONE:
		if (value != NULL)
			return refuse(why, size, "option '%s' takes no value",
			    w);
		return 0;
	case V_NUMBER:
		if (value == NULL || !number_ok(value,
		    strcmp(opt->name, "max-delete") == 0))
			return refuse(why, size, "option '%s' needs a number",
			    w);
		return 0;
	case V_CHOICE:
		if (value == NULL || !choice_ok(opt->choices, value))
			return refuse(why, size, "option '%s': value not "
			    "allowed", w);
		return 0;
	case V_TEMP_DIR:
	case V_PARTIAL_DIR:
		if (value == NULL) {
			if (*i + 1 >= n)
				return refuse(why, size, "option '%s' needs a "
				    "value", w);
			value = words[++*i];
		}
		if (opt->kind == V_TEMP_DIR) {
			if (!remote_proto_is_temp_name(value, NULL, NULL))
				return refuse(why, size, "--temp-dir '%s' is "
				    "not a treesync temporary's name", value);
			out->temp_dir = value;
		} else if (strcmp(value, REMOTE_PROTO_PARTIAL_DIR) != 0) {
			return refuse(why, size, "--partial-dir '%s' is not "
			    REMOTE_PROTO_PARTIAL_DIR, value);
		}
		return 0;
	}
	return refuse(why, size, "option '%s' is not allowed", w);
}

int
rsync_allow_check(char *const *words, size_t n, RsyncRequest *out,
    char *why, size_t why_size)
{
	size_t i, dot = 0;
	int r;

	memset(out, 0, sizeof *out);
	if (n < 1 || strcmp(words[0], "rsync") != 0)
		return refuse(why, why_size, "not an rsync command");
	if (n < 2 || strcmp(words[1], "--server") != 0)
		return refuse(why, why_size, "'rsync' without '--server' as "
		    "its first argument");
	for (i = 2; i < n; i++) {
		const char *w = words[i];
		char bad = 0;

		if (strcmp(w, ".") == 0) {
			dot = i;
			break;
		}
		if (strcmp(w, "--sender") == 0)
			return refuse(why, why_size, "option '--sender' is not "
			    "allowed: this key only receives");
		if (strncmp(w, "--", 2) == 0) {
			if ((r = check_long(words, n, &i, out, why,
			    why_size)) < 0)
				return r;
			continue;
		}
		/* --modify-window=-1, as rsync writes it: compare mtimes
		 * to the nanosecond (without it rsync compares seconds). */
		if (strncmp(w, "-@", 2) == 0 && number_ok(w + 2, true))
			continue;
		if (w[0] == '-' && short_cluster_ok(w, &bad))
			continue;
		if (w[0] == '-' && bad != 0)
			return refuse(why, why_size, "option '-%c' (in '%s') "
			    "is not allowed", bad, w);
		return refuse(why, why_size, "argument '%s' is not allowed",
		    w);
	}
	if (dot == 0)
		return refuse(why, why_size, "no '.' before the destination");
	if (dot + 1 >= n)
		return refuse(why, why_size, "no destination");
	if (dot + 2 < n)
		return refuse(why, why_size, "more than one destination "
		    "('%s')", words[dot + 2]);
	out->dest = words[dot + 1];
	if (out->dest[0] == '\0')
		return refuse(why, why_size, "an empty destination");
	out->argc = dot + 2;
	out->argv = calloc(out->argc + 1, sizeof *out->argv);
	if (out->argv == NULL)
		return -ENOMEM;
	for (i = 0; i <= dot; i++)
		out->argv[i] = words[i];
	out->argv[dot + 1] = (char *)".";
	return 0;
}

void
rsync_request_free(RsyncRequest *req)
{
	free(req->argv);
	req->argv = NULL;
}
