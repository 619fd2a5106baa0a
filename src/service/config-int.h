/*
 * config-int — what the config module's files share (private to
 * src/service/config*.c):
 *   config.c        loading: the libconfig tree into a Config, setting by
 *                   setting (config_load, config_free)
 *   config-check.c  the rules between settings and the machine: overlapping
 *                   paths, what --check-config looks up (config_check_sources)
 *   config-diag.c   the problems as FILE:LINE: message, sorted; what a
 *                   setting holds ("got ..."), integers as written, typos,
 *                   syntax errors explained
 * Any one thread at a time: the reactor never runs it (start-up in main.c,
 * a reload on its loader thread, --check-config).
 */
#ifndef TREESYNC_CONFIG_INT_H
#define TREESYNC_CONFIG_INT_H

#include <libconfig.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "service/config.h"

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

/* A file's text, read when a message needs to look at it. */
struct file_text {
	char *path;
	char *text;		/* NULL: unreadable */
};

struct loader {
	const char *path;
	struct file_text *texts;	/* the main file and its @includes */
	size_t n_texts;
	struct problems pb;
	Config *cfg;
	struct sync_load *syncs;	/* parallel to cfg->syncs */
};

extern const char *const config_global_keys[];
extern const char *const config_sync_keys[];

/* config-diag.c */
void diag_vadd(struct problems *pb, const char *file, int line,
    const char *fmt, va_list ap);
void diag_add(struct problems *pb, const char *file, int line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The problems in file order as one malloc'd text; NULL when out of memory. */
char *diag_join(struct problems *pb);
void diag_free(struct problems *pb);
/* The text of file (cached in ld), or NULL. */
const char *diag_text_of(struct loader *ld, const char *file);
void diag_texts_free(struct loader *ld);
int diag_line_of(struct loader *ld, const config_setting_t *s);
/* A problem at setting at (NULL: the file as a whole). */
void diag_report(struct loader *ld, const config_setting_t *at,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* s in double quotes, escaped and shortened: one line of a message. */
void diag_quote(const char *s, char *buf, size_t size);
/* "integer 5", "string \"4\"", "a list": what a setting holds. */
void diag_describe(struct loader *ld, const config_setting_t *s, char *buf,
    size_t size);
/* in_sync: NULL at top level, else the label of the sync group. */
void diag_unknown_key(struct loader *ld, const config_setting_t *s,
    const char *in_sync);
/*
 * The integer setting s as written in its file. libconfig 1.5 keeps a
 * decimal beyond 32 bits wrapped (4294967346 becomes 50) and one beyond 64
 * bits saturated, so the literal is read again from the text: 0 and *out;
 * -ERANGE when it is beyond 64 bits (text holds it); -ENOENT when it
 * cannot be found (*out is libconfig's value).
 */
int diag_integer(struct loader *ld, const config_setting_t *s,
    long long *out, char *text, size_t size);
/* A parse error of libconfig's, made into a problem that says more. */
void diag_parse_error(struct loader *ld, const config_t *lc);

/* config.c: an absolute path without "//", "/./" or a trailing '/' in
 * *out: 0; > 0 when relative or holding ".." (nothing in *out); or
 * -ENOMEM. */
int config_normalize_path(const char *in, char **out);
/* A string setting holding an absolute path, normalized into *out (NULL
 * when refused: the problem is reported). 0 or -ENOMEM. */
int config_get_path(struct loader *ld, const config_setting_t *s,
    const char *prefix, const char *what, char **out);

/* config-check.c */
int config_check_overlaps(struct loader *ld);

#endif
