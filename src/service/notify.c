/*
 * notify — see include/service/notify.h.
 *
 * sd_notify() is one datagram on a local socket: cheap, never waits on a
 * disk, so the reactor may call it. Errors are ignored on purpose: a
 * daemon that cannot reach systemd still syncs, and systemd itself reports
 * a missing READY or watchdog ping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "service/notify.h"

static struct event *watchdog;
static char last_status[256];

#ifdef HAVE_LIBSYSTEMD
static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}
#endif

int
notify_init(struct event_base *base)
{
#ifdef HAVE_LIBSYSTEMD
	uint64_t usec = 0;
	struct timeval tv;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	/* Half the timeout: one late ping is not yet a restart. */
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	if ((watchdog = event_new(base, -1, EV_PERSIST, on_watchdog,
	    NULL)) == NULL)
		return -ENOMEM;
	if (event_add(watchdog, &tv) < 0) {
		event_free(watchdog);
		watchdog = NULL;
		return -EINVAL;
	}
	sd_notify(0, "WATCHDOG=1");
#else
	(void)base;
#endif
	return 0;
}

bool
notify_watchdog_enabled(void)
{
	return watchdog != NULL;
}

void
notify_ready(void)
{
#ifdef HAVE_LIBSYSTEMD
	if (last_status[0] != '\0')
		sd_notifyf(0, "READY=1\nSTATUS=%s", last_status);
	else
		sd_notify(0, "READY=1");
#endif
}

void
notify_reloading(void)
{
#ifdef HAVE_LIBSYSTEMD
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading "
	    "the configuration", (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	last_status[0] = '\0';
#endif
}

void
notify_stopping(void)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
#endif
}

void
notify_status(const char *line)
{
	if (strcmp(line, last_status) == 0)
		return;
	snprintf(last_status, sizeof last_status, "%s", line);
#ifdef HAVE_LIBSYSTEMD
	sd_notifyf(0, "STATUS=%s", last_status);
#endif
}

void
notify_free(void)
{
	if (watchdog != NULL)
		event_free(watchdog);
	watchdog = NULL;
	last_status[0] = '\0';
}
