/*
 * config — the config file (libconfig) turned into a validated Config.
 *
 * Owns every string and array inside a Config; config_free releases it all.
 * Validation collects every problem, each as "FILE:LINE: message", so an
 * operator fixes a broken file in one pass. Called from main.c (start-up,
 * --check-config) and, for a reload, from the thread of service/reload.h
 * (never from the reactor: it reads files and resolves paths).
 */
#ifndef TREESYNC_CONFIG_H
#define TREESYNC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "engine/pair.h"
#include "util/synclog.h"
#include "watch/watcher.h"

#define CONFIG_DEFAULT_PATH "/etc/treesync/treesync.conf"
#define CONFIG_DEFAULT_SOCKET "/run/treesync/control.sock"
#define CONFIG_DEFAULT_WORKERS 4
#define CONFIG_DEFAULT_DELAY_MS 50
#define CONFIG_MAX_WORKERS 256
#define CONFIG_MAX_DELAY_MS 60000

typedef struct Config {
	char *path;		/* the file it came from */
	int workers;		/* 1..CONFIG_MAX_WORKERS */
	int delay_ms;		/* 0..CONFIG_MAX_DELAY_MS */
	char *log_file;		/* NULL: stderr (or the journal) */
	int log_file_line;	/* for messages */
	LogLevel log_level;
	char *control_socket;
	char *control_socket_group;	/* NULL: the daemon's own group */
	gid_t control_socket_gid;	/* that group, looked up at load */
	char *metrics_listen;	/* "ADDR:PORT" as written; NULL: off */
	struct sockaddr_storage metrics_addr;	/* it, parsed (numeric) */
	socklen_t metrics_addrlen;
	MaxDelete max_delete;	/* default of every sync pair */
	WatchMode watch;	/* `watch`, default WATCH_AUTO */
	SyncPairConfig *syncs;
	size_t n_syncs;		/* may be 0: the daemon idles until a reload */
	RemoteConfig *remotes;	/* hosts "NAME:/path" destinations name */
	size_t n_remotes;
} Config;

/*
 * Reads and validates path. Returns 0 and sets *ret, or a negative errno
 * (-EINVAL: invalid; -ENOENT etc.: unreadable) and sets *errors to a
 * malloc'd text of one or more "FILE:LINE: message\n" lines (or
 * "FILE: message\n" when no line applies). The caller frees *errors.
 */
int config_load(const char *path, Config **ret, char **errors);

/*
 * Checks what only the machine can tell, what the daemon would otherwise
 * fail on at start: every source exists and is a directory; the directory
 * log_file goes in exists; each local destination's parent directory exists (a
 * destination itself is made when missing, its parents are not); every
 * remote's identity and known_hosts file can be read. Same
 * error convention as config_load. --check-config runs it; the daemon
 * instead treats a missing source as a fault of that pair.
 */
int config_check_sources(const Config *cfg, char **errors);

const SyncPairConfig *config_find_sync(const Config *cfg, const char *name);

/* Two destinations' remotes (NULL: local) say the same: a reload that
 * changes one restarts the pairs using it. */
bool config_remote_same(const RemoteConfig *a, const RemoteConfig *b);

void config_free(Config *cfg);

#endif
