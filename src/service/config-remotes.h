/*
 * config-remotes — the `remotes` list and a sync's destinations, local
 * paths and those that name a remote ("NAME:/abs/path"), SPEC "Remote
 * destinations". Private to the config
 * module (config-int.h): config.c calls it while it loads, on the same
 * thread and with the same way of reporting problems (diag_*).
 *
 * Owns the RemoteConfig array of a Config (config_remotes_free).
 */
#ifndef TREESYNC_CONFIG_REMOTES_H
#define TREESYNC_CONFIG_REMOTES_H

#include <libconfig.h>

#include "config-int.h"

/* The `remotes` list into ld->cfg->remotes, each remote's ssh control
 * socket beside the control socket. 0 or -ENOMEM (problems reported). */
int config_remotes_load(struct loader *ld, const config_setting_t *s);

/*
 * True when the string e spells a remote destination (no leading '/',
 * a ':' before any '/'). Then *path gets "NAME:/normalized" (NULL when
 * it is refused, with the problem reported) and *remote its remote.
 * Returns 1 (remote), 0 (not remote: nothing done) or -ENOMEM.
 */
int config_remote_destination(struct loader *ld, const config_setting_t *e,
    const char *prefix, const char *what, char **path,
    const RemoteConfig **remote);

/* A pair with a remote destination: every exclude pattern must compile
 * to an rsync filter rule (dest/rsync-filter.h). */
void config_remotes_check_excludes(struct loader *ld,
    const config_setting_t *group, const SyncPairConfig *pair,
    const char *label);

/* What --check-config looks up: each remote's key and known_hosts file
 * can be read (and the key is private enough for ssh). */
void config_remotes_check_files(const Config *cfg, struct problems *pb);

/* A sync group's destinations setting s (a list of local paths and
 * "NAME:/path" remote ones) into pair. 0 or -ENOMEM. */
int config_load_destinations(struct loader *ld, const config_setting_t *s,
    SyncPairConfig *pair, struct sync_load *sl);

/* The remotes, and every pair's dest_remotes. */
void config_remotes_free(Config *cfg);

#endif
