/*
 * metrics — what treesyncctl shows, rendered from a snapshot of the
 * daemon: the status table a person reads, the same as JSON, and the
 * Prometheus text exposition format.
 *
 * Owns nothing: pure functions of a DaemonStatus, written into an
 * evbuffer (or a line). The daemon takes the snapshot on the reactor
 * thread (live_snapshot of each pair, watch counts) for every read-out
 * alike, so they show one state; these may run on any thread.
 */
#ifndef TREESYNC_METRICS_H
#define TREESYNC_METRICS_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "live/live.h"

struct evbuffer;

typedef struct PairStatus {
	const char *name;
	const char *source;
	size_t watches;		/* directories watched now */
	LiveStats live;
} PairStatus;

typedef struct DaemonStatus {
	const char *version;
	pid_t pid;
	time_t started;		/* wall clock */
	time_t now;
	const char *config_path;
	const char *control_socket;
	PairStatus *pairs;
	size_t n_pairs;
} DaemonStatus;

/* The table: one row per pair, a line per destination when there are more. */
void metrics_status_text(const DaemonStatus *st, struct evbuffer *out);
/* One JSON object; raw numbers, times as Unix seconds (null: never). */
void metrics_status_json(const DaemonStatus *st, struct evbuffer *out);
/* Prometheus text format 0.0.4; labels sync and destination. */
void metrics_prometheus(const DaemonStatus *st, struct evbuffer *out);
/*
 * systemd's STATUS= line from the same snapshot: "idle: 4 pairs in sync",
 * or the states worst first with their counts and what is queued:
 * "error 1/4 pairs, syncing 2/4 pairs, 12,034 files queued; last error:
 * copy 'a' -> /dst: No space left on device".
 */
void metrics_status_line(const DaemonStatus *st, char *buf, size_t size);

/* "12,034" */
void metrics_format_count(unsigned long long n, char *buf, size_t size);

#endif
