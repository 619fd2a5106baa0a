/*
 * synclog — the sync log and diagnostics.
 *
 * Owns the log destination (a log file, else stderr, or the journal with
 * structured fields when stderr is systemd's journal stream) and the
 * level filter.
 * Format, one line per event (SPEC "Sync log"):
 *   2026-11-24T13:45:01.123Z info  projects copy   src/main.c -> /dst  4.1 KiB 0.8 ms
 * Paths are escaped so that every event stays on one line: backslash,
 * control characters and bytes >= 0x7f that are not valid UTF-8 become
 * \\, \n, \t, \xNN.
 *
 * Thread: the reactor thread (and main.c before the loop starts) only.
 */
#ifndef TREESYNC_SYNCLOG_H
#define TREESYNC_SYNCLOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
} LogLevel;

/* Parses "error" | "warn" | "info" | "debug"; -1 when unknown. */
int synclog_level_from_string(const char *s);
const char *synclog_level_name(LogLevel level);

/* Opens path for appending (NULL: stderr). Returns 0 or -errno. */
int synclog_open(const char *path, LogLevel level);
/* Reopens the log file after logrotate moved it (SIGUSR1). */
int synclog_reopen(void);
void synclog_set_level(LogLevel level);
bool synclog_enabled(LogLevel level);
void synclog_close(void);
/* True when lines go to the journal (sd_journal_send). */
bool synclog_to_journal(void);
/* True when the log goes to a terminal (the progress line shares it). */
bool synclog_is_tty(void);

/* A general message: time, level, then the text. */
void synclog_msg(LogLevel level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * One sync event: pair, action, path relative to the source root (escaped),
 * destination root, then the free-form outcome ("4.1 KiB 0.8 ms",
 * "failed: No space left on device (will retry)").
 */
void synclog_event(LogLevel level, const char *pair, const char *action,
    const char *relpath, const char *dest, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Escapes s for a log line into buf (always NUL-terminated). */
void synclog_escape(const char *s, char *buf, size_t size);

/* "4.1 KiB", "2.0 GiB": human size into buf. */
void synclog_format_size(unsigned long long bytes, char *buf, size_t size);

/* Clears a progress line on a TTY before a log line is printed over it. */
void synclog_set_progress(const char *line);

#endif
