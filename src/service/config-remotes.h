/*
 * config-remotes — the `remotes` list and the destinations that name one
 * ("NAME:/abs/path"), SPEC "Remote destinations". Private to the config
 * module: config.c calls it while it loads (the same thread and rules),
 * through the loader's own way of reporting problems (ConfigVoice), so
 * this block does not depend on how the loader is laid out.
 *
 * Owns the RemoteConfig array of a Config (config_remotes_free).
 */
#ifndef TREESYNC_CONFIG_REMOTES_H
#define TREESYNC_CONFIG_REMOTES_H

#include <libconfig.h>
#include <stdarg.h>

#include "service/config.h"

/* How the loader reports, describes and normalizes (config.c's). */
typedef struct ConfigVoice {
	void *ld;
	void (*report)(void *ld, const config_setting_t *at, const char *fmt,
	    va_list ap);
	/* "integer 5", "string \"x\"": for "got ..." */
	void (*describe)(void *ld, const config_setting_t *s, char *buf,
	    size_t size);
	int (*line_of)(void *ld, const config_setting_t *s);
	/* An absolute path without "//", "/./" or a trailing '/' in *out:
	 * 0, 1 (relative), 2 (has ".."), or -ENOMEM. */
	int (*normalize)(const char *in, char **out);
} ConfigVoice;

/* The `remotes` list into cfg->remotes. 0 or -ENOMEM (problems
 * reported). */
int config_remotes_load(const ConfigVoice *v, const config_setting_t *s,
    Config *cfg);

/* Once every global is read: each remote's ssh control socket beside
 * the control socket (too long a path is a problem at the remote). */
int config_remotes_finish(const ConfigVoice *v, Config *cfg);

/*
 * True when the string e spells a remote destination (no leading '/',
 * a ':' before any '/'). Then *path gets "NAME:/normalized" (NULL when
 * it is refused, with the problem reported) and *remote its remote.
 * Returns 1 (remote), 0 (not remote: nothing done) or -ENOMEM.
 */
int config_remote_destination(const ConfigVoice *v, const Config *cfg,
    const config_setting_t *e, const char *prefix, const char *what,
    char **path, const RemoteConfig **remote);

/* A pair with a remote destination: every exclude pattern must compile
 * to an rsync filter rule (dest/rsync-filter.h). */
void config_remotes_check_excludes(const ConfigVoice *v,
    const config_setting_t *group, const SyncPairConfig *pair,
    const char *label);

/* What --check-config looks up: each remote's key and known_hosts file
 * can be read (and the key is private enough for ssh). add(ctx, line,
 * message) records a problem. */
void config_remotes_check_files(const Config *cfg,
    void (*add)(void *ctx, int line, const char *fmt, ...), void *ctx);

void config_remotes_free(Config *cfg);

#endif
