/*
 * synclog — see include/util/synclog.h.
 *
 * Lines are formatted into one buffer and written with a single write(2),
 * so a line is never interleaved with another process's output and a crash
 * loses at most the line being written.
 *
 * Under systemd, when stderr is the journal stream (JOURNAL_STREAM names
 * its device and inode) and no log_file is set, lines go to the journal
 * with sd_journal_send instead: PRIORITY from the level, MESSAGE the line
 * without its time (the journal stamps its own), and for sync events the
 * fields SYNC=, ACTION=, PATH=, DEST=, so `journalctl SYNC=name` selects
 * one pair. A datagram to journald; it does not wait on a disk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "util/synclog.h"

#define LINE_MAX_BYTES 8192

static int log_fd = STDERR_FILENO;
static char *log_path;
static LogLevel log_level = LOG_LEVEL_INFO;
static char progress[256];	/* last progress line shown on the TTY */
static int progress_tty = -1;	/* stderr is a terminal (-1: not asked yet) */
static bool to_journal;		/* stderr is systemd's journal stream */

#ifdef HAVE_LIBSYSTEMD
static const int priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
#endif

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
synclog_level_from_string(const char *s)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
synclog_level_name(LogLevel level)
{
	if ((unsigned)level >= sizeof level_names / sizeof level_names[0])
		return "?";
	return level_names[level];
}

static int
open_log_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	return fd < 0 ? -errno : fd;
}

/* True when stderr is the stream systemd connected to the journal. */
static bool
stderr_is_journal(void)
{
#ifdef HAVE_LIBSYSTEMD
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
#else
	return false;
#endif
}

bool
synclog_to_journal(void)
{
	return to_journal;
}

int
synclog_open(const char *path, LogLevel level)
{
	int fd = STDERR_FILENO;
	char *copy = NULL;

	if (path != NULL) {
		if ((copy = strdup(path)) == NULL)
			return -ENOMEM;
		if ((fd = open_log_file(path)) < 0) {
			free(copy);
			return fd;
		}
	}
	synclog_close();
	log_fd = fd;
	log_path = copy;
	log_level = level;
	to_journal = path == NULL && stderr_is_journal();
	return 0;
}

int
synclog_reopen(void)
{
	int fd;

	if (log_path == NULL)
		return 0;
	if ((fd = open_log_file(log_path)) < 0)
		return fd;
	close(log_fd);
	log_fd = fd;
	return 0;
}

void
synclog_set_level(LogLevel level)
{
	log_level = level;
}

bool
synclog_enabled(LogLevel level)
{
	return level <= log_level;
}

bool
synclog_is_tty(void)
{
	if (progress_tty < 0)
		progress_tty = isatty(STDERR_FILENO);
	return progress_tty;
}



void
synclog_close(void)
{
	if (log_fd != STDERR_FILENO && log_fd >= 0)
		close(log_fd);
	log_fd = STDERR_FILENO;
	free(log_path);
	log_path = NULL;
	to_journal = false;
}

/* Writes all of buf, retrying short writes and EINTR; drops it on error. */
static void
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void
synclog_escape(const char *s, char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	if (size == 0)
		return;
	while (*p != '\0' && o + 5 < size) {
		size_t u;
		if (*p == '\\') {
			buf[o++] = '\\';
			buf[o++] = '\\';
			p++;
		} else if (*p == '\n' || *p == '\t' || *p == '\r') {
			buf[o++] = '\\';
			buf[o++] = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", *p++);
		} else if (*p < 0x80) {
			buf[o++] = (char)*p++;
		} else if ((u = utf8_len(p)) > 0 && o + u < size) {
			memcpy(buf + o, p, u);
			o += u;
			p += u;
		} else {
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", *p++);
		}
	}
	if (*p != '\0' && o + 4 <= size) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

void
synclog_format_size(unsigned long long bytes, char *buf, size_t size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%llu B", bytes);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* Formats "2026-11-24T13:45:01.123Z " into buf; returns its length. */
static size_t
format_time(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, size - n, ".%03ldZ ",
	    ts.tv_nsec / 1000000);
	return n;
}

/* Emits one finished line, keeping a TTY progress line below it. */
static void
emit(char *line, size_t len)
{
	if (len >= LINE_MAX_BYTES - 1)
		len = LINE_MAX_BYTES - 2;
	line[len++] = '\n';
	bool shared = log_fd == STDERR_FILENO && progress[0] != '\0';

	if (shared)
		write_all(log_fd, "\r\033[K", 4);
	write_all(log_fd, line, len);
	if (shared)
		write_all(log_fd, progress, strlen(progress));
}

static size_t
clamp(int n, size_t used)
{
	if (n < 0)
		return used;
	if (used + (size_t)n >= LINE_MAX_BYTES)
		return LINE_MAX_BYTES - 1;
	return used + (size_t)n;
}

void
synclog_msg(LogLevel level, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	size_t n;
	va_list ap;

	size_t t;

	if (!synclog_enabled(level))
		return;
	n = t = format_time(line, sizeof line);
	n = clamp(snprintf(line + n, sizeof line - n, "%-5s ",
	    synclog_level_name(level)), n);
	va_start(ap, fmt);
	n = clamp(vsnprintf(line + n, sizeof line - n, fmt, ap), n);
	va_end(ap);
#ifdef HAVE_LIBSYSTEMD
	if (to_journal) {
		sd_journal_send("MESSAGE=%s", line + t, "PRIORITY=%d",
		    priorities[level], NULL);
		return;
	}
#endif
	emit(line, n);
}

void
synclog_event(LogLevel level, const char *pair, const char *action,
    const char *relpath, const char *dest, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES], path[4096];
	size_t n;
	va_list ap;

	size_t t;

	if (!synclog_enabled(level))
		return;
	synclog_escape(relpath[0] == '\0' ? "." : relpath, path, sizeof path);
	n = t = format_time(line, sizeof line);
	n = clamp(snprintf(line + n, sizeof line - n, "%-5s %s %-6s %s -> %s  ",
	    synclog_level_name(level), pair, action, path, dest), n);
	va_start(ap, fmt);
	n = clamp(vsnprintf(line + n, sizeof line - n, fmt, ap), n);
	va_end(ap);
#ifdef HAVE_LIBSYSTEMD
	if (to_journal) {
		sd_journal_send("MESSAGE=%s", line + t, "PRIORITY=%d",
		    priorities[level], "SYNC=%s", pair, "ACTION=%s", action,
		    "PATH=%s", path, "DEST=%s", dest, NULL);
		return;
	}
#endif
	emit(line, n);
}

void
synclog_set_progress(const char *line)
{
	if (!synclog_is_tty())
		return;
	if (line == NULL || line[0] == '\0') {
		if (progress[0] != '\0')
			write_all(STDERR_FILENO, "\r\033[K", 4);
		progress[0] = '\0';
		return;
	}
	snprintf(progress, sizeof progress, "\r\033[K%s", line);
	write_all(STDERR_FILENO, progress, strlen(progress));
}
