/*
 * notify — the daemon's side of systemd's service protocol (sd_notify):
 * READY=1, STATUS=, RELOADING=1, STOPPING=1 and the watchdog pings.
 *
 * Owns the watchdog timer in the event base and the last STATUS text (so
 * an unchanged line is not sent again). Without libsystemd at build time,
 * or outside systemd (no NOTIFY_SOCKET), every call does nothing.
 * Reactor thread only: a ping that comes from the reactor proves the
 * reactor is turning.
 */
#ifndef TREESYNC_NOTIFY_H
#define TREESYNC_NOTIFY_H

#include <stdbool.h>

struct event_base;

/* Starts the WATCHDOG=1 timer (every half WatchdogSec) when systemd asked
 * for one. Returns 0 or -errno. */
int notify_init(struct event_base *base);
/* READY=1, with the current STATUS line. */
void notify_ready(void);
/* RELOADING=1 with MONOTONIC_USEC (systemd 253+ wants it). */
void notify_reloading(void);
void notify_stopping(void);
/* STATUS=line, when it differs from the last one sent. */
void notify_status(const char *line);
/* True when a watchdog timer runs (tests and the start-up log line). */
bool notify_watchdog_enabled(void);
void notify_free(void);

#endif
