/*
 * synclog — see include/util/synclog.h.
 *
 * The lines are made here, on the caller's thread: time, level, the
 * escaped path, the outcome, all in one buffer; synclog-writer.c queues
 * the line and its thread writes it with a single write(2), so a line is
 * never interleaved with another process's output. A crash loses what the
 * queue still held (at most the backlog); an exit writes it out.
 *
 * Under systemd, when stderr is the journal stream (JOURNAL_STREAM names
 * its device and inode) and no log_file is set, lines go to the journal
 * with sd_journal_sendv instead: PRIORITY from the level, MESSAGE the line
 * without its time (the journal stamps its own), and for sync events the
 * fields SYNC=, ACTION=, PATH=, DEST=, so `journalctl SYNC=name` selects
 * one pair. Those go through the writer too: a datagram to journald blocks
 * when journald's socket queue is full (it rate-limits and can fall
 * behind under a burst), and the reactor must not wait for that either.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "synclog-int.h"

static bool log_to_file;	/* a log_file is open (else stderr/journal) */
static LogLevel log_level = LOG_LEVEL_INFO;
static char progress[256];	/* last progress line shown on the TTY */
static int progress_tty = -1;	/* stderr is a terminal (-1: not asked yet) */
static bool to_journal;		/* stderr is systemd's journal stream */
static size_t backlog_limit = SYNCLOG_BACKLOG_DEFAULT;
static int exit_wait_ms = SYNCLOG_EXIT_WAIT_MS_DEFAULT;

static const int priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

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

int
synclog_priority(LogLevel level)
{
	if ((unsigned)level >= sizeof priorities / sizeof priorities[0])
		return LOG_DEBUG;
	return priorities[level];
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

void
synclog_set_writer_limits(size_t backlog_bytes, int wait_ms)
{
	backlog_limit = backlog_bytes > 0 ? backlog_bytes :
	    SYNCLOG_BACKLOG_DEFAULT;
	exit_wait_ms = wait_ms > 0 ? wait_ms : SYNCLOG_EXIT_WAIT_MS_DEFAULT;
}

int
synclog_open(const char *path, LogLevel level)
{
	int fd = STDERR_FILENO, r;
	bool journal;

	if (path != NULL && (fd = open(path, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC, 0640)) < 0)
		return -errno;
	synclog_close();
	journal = path == NULL && stderr_is_journal();
	if ((r = writer_start(fd, path, journal, backlog_limit,
	    exit_wait_ms)) < 0) {
		if (fd != STDERR_FILENO)
			close(fd);
		return r;
	}
	log_to_file = path != NULL;
	log_level = level;
	to_journal = journal;
	return 0;
}

void
synclog_reopen(void)
{
	if (!log_to_file)
		synclog_msg(LOG_LEVEL_INFO, "log: no log file to reopen (the "
		    "log goes to %s)", to_journal ? "the journal" :
		    "standard error");
	else
		writer_reopen(synclog_enabled(LOG_LEVEL_INFO));
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



bool
synclog_flush(int wait_ms)
{
	return writer_flush(wait_ms);
}

void
synclog_close(void)
{
	writer_stop();
	log_to_file = false;
	to_journal = false;
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

static size_t
clamp(int n, size_t used)
{
	if (n < 0)
		return used;
	if (used + (size_t)n >= SYNCLOG_LINE_MAX)
		return SYNCLOG_LINE_MAX - 1;
	return used + (size_t)n;
}

size_t
synclog_prefix(char *buf, size_t size, LogLevel level, size_t *time_len)
{
	size_t t = format_time(buf, size), n;

	n = (size_t)snprintf(buf + t, size - t, "%-5s ",
	    synclog_level_name(level));
	*time_len = t;
	return t + n;
}

/*
 * Hands one finished line (line[0..len), no newline; its time ends at t)
 * to the writer: to the journal as fields (fields[0..n_fields) are the
 * extra ones), else as text with a TTY progress line kept below it.
 */
static void
emit(LogLevel level, char *line, size_t len, size_t t,
    const struct iovec *fields, int n_fields)
{
	struct iovec iov[8];
	char prio[32];
	int n = 0;

	if (len >= SYNCLOG_LINE_MAX - 1)
		len = SYNCLOG_LINE_MAX - 2;
	if (to_journal) {
		memcpy(line + t - 8, "MESSAGE=", 8);
		iov[n++] = (struct iovec){ line + t - 8, len - (t - 8) };
		snprintf(prio, sizeof prio, "PRIORITY=%d",
		    synclog_priority(level));
		iov[n++] = (struct iovec){ prio, strlen(prio) };
		for (int i = 0; i < n_fields && n < 8; i++)
			iov[n++] = fields[i];
		writer_put(STDERR_FILENO, true, iov, n);
		return;
	}
	line[len++] = '\n';
	bool shared = !log_to_file && progress[0] != '\0';

	if (shared)
		iov[n++] = (struct iovec){ "\r\033[K", 4 };
	iov[n++] = (struct iovec){ line, len };
	if (shared)
		iov[n++] = (struct iovec){ progress, strlen(progress) };
	writer_put(STDERR_FILENO, false, iov, n);
}

void
synclog_msg(LogLevel level, const char *fmt, ...)
{
	char line[SYNCLOG_LINE_MAX];
	size_t n, t;
	va_list ap;

	if (!synclog_enabled(level))
		return;
	n = synclog_prefix(line, sizeof line, level, &t);
	va_start(ap, fmt);
	n = clamp(vsnprintf(line + n, sizeof line - n, fmt, ap), n);
	va_end(ap);
	emit(level, line, n, t, NULL, 0);
}

/* "NAME=value" into buf as one journal field. */
static struct iovec
field(char *buf, size_t size, const char *name, const char *value)
{
	int n = snprintf(buf, size, "%s=%s", name, value);

	return (struct iovec){ buf, n < 0 ? 0 : (size_t)n >= size ? size - 1 :
	    (size_t)n };
}

void
synclog_event(LogLevel level, const char *pair, const char *action,
    const char *relpath, const char *dest, const char *fmt, ...)
{
	char line[SYNCLOG_LINE_MAX], path[4096];
	char f_sync[300], f_action[64], f_path[4096 + 8], f_dest[4096 + 8];
	struct iovec fields[4];
	size_t n, t;
	va_list ap;

	if (!synclog_enabled(level))
		return;
	synclog_escape(relpath[0] == '\0' ? "." : relpath, path, sizeof path);
	n = synclog_prefix(line, sizeof line, level, &t);
	n = clamp(snprintf(line + n, sizeof line - n, "%s %-6s %s -> %s  ",
	    pair, action, path, dest), n);
	va_start(ap, fmt);
	n = clamp(vsnprintf(line + n, sizeof line - n, fmt, ap), n);
	va_end(ap);
	if (to_journal) {
		fields[0] = field(f_sync, sizeof f_sync, "SYNC", pair);
		fields[1] = field(f_action, sizeof f_action, "ACTION", action);
		fields[2] = field(f_path, sizeof f_path, "PATH", path);
		fields[3] = field(f_dest, sizeof f_dest, "DEST", dest);
	}
	emit(level, line, n, t, fields, to_journal ? 4 : 0);
}

void
synclog_set_progress(const char *line)
{
	struct iovec iov;

	if (!synclog_is_tty())
		return;
	if (line == NULL || line[0] == '\0') {
		bool shown = progress[0] != '\0';

		progress[0] = '\0';
		if (!shown)
			return;
		iov = (struct iovec){ "\r\033[K", 4 };
	} else {
		snprintf(progress, sizeof progress, "\r\033[K%s", line);
		iov = (struct iovec){ progress, strlen(progress) };
	}
	/* Beside the log's lines, in order; directly when they go to a
	 * file (the terminal then shows only this line). */
	if (!log_to_file && !to_journal) {
		writer_put(STDERR_FILENO, false, &iov, 1);
		return;
	}
	while (write(STDERR_FILENO, iov.iov_base, iov.iov_len) < 0 &&
	    errno == EINTR)
		;
}
