/*
 * synclog — the sync log and diagnostics.
 *
 * Owns the log destination (a log file, else stderr, or the journal with
 * structured fields when stderr is systemd's journal stream), the level
 * filter and the writer thread that does the writing.
 * Format, one line per event (SPEC "Sync log"):
 *   2026-11-24T13:45:01.123Z info  projects copy   src/main.c -> /dst  4.1 KiB 0.8 ms
 * Paths are escaped so that every event stays on one line: backslash,
 * control characters and bytes >= 0x7f that are not valid UTF-8 become
 * \\, \n, \t, \xNN.
 *
 * Lines are made (formatted, time-stamped) by the caller's thread and
 * queued; after synclog_open a writer thread of this module writes them
 * (write(2) or sd_journal_sendv), so a slow or stalled log disk never
 * holds up the caller. The queue is bounded (SYNCLOG_BACKLOG_DEFAULT
 * bytes): below the bound no line is lost; past it lines are dropped, and
 * once the writer has room again one line says how many ("log: 1234 lines
 * dropped: ..."). synclog_close writes out what is queued before it
 * returns. Before synclog_open and after synclog_close there is no writer
 * and lines are written directly (start-up errors, unit tests).
 *
 * Thread: every function here is for the reactor thread (and main.c
 * before the loop starts and after it ends). Workers never log.
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

#define SYNCLOG_BACKLOG_DEFAULT (4u << 20)	/* bytes queued, at most */
#define SYNCLOG_EXIT_WAIT_MS_DEFAULT 5000	/* close: no progress for so long */

/* Parses "error" | "warn" | "info" | "debug"; -1 when unknown. */
int synclog_level_from_string(const char *s);
const char *synclog_level_name(LogLevel level);

/*
 * The writer's bounds, for the next synclog_open: the backlog in bytes
 * (0: the default), and how long synclog_close waits for a writer that
 * makes no progress before it gives up on what is left (0: the default).
 */
void synclog_set_writer_limits(size_t backlog_bytes, int exit_wait_ms);

/*
 * Opens path for appending (NULL: stderr, or the journal) and starts the
 * writer thread. Returns 0 or -errno (the path cannot be opened, or no
 * thread).
 */
int synclog_open(const char *path, LogLevel level);
/*
 * Reopens the log file after logrotate moved it (SIGUSR1). The writer
 * does it once the lines logged before this call are written, then logs
 * "log file reopened" in the new file, or why not in the old one.
 */
void synclog_reopen(void);
void synclog_set_level(LogLevel level);
bool synclog_enabled(LogLevel level);
/*
 * Writes what is queued and stops the writer. A writer that makes no
 * progress for the exit wait (a stalled log disk) is given up on: what it
 * still held is counted on stderr. Then the file is closed.
 */
void synclog_close(void);
/*
 * Waits, at most wait_ms, until the lines logged so far are written; false
 * when the log did not take them in time. For an order others can see: the
 * "ready" line before systemd's "Started" that READY=1 brings.
 */
bool synclog_flush(int wait_ms);
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

/*
 * The TTY progress line (NULL or "": clear it). Log lines are printed
 * above it; it goes through the writer when the log is on stderr too, so
 * the order on the terminal is the order of the calls.
 */
void synclog_set_progress(const char *line);

#endif
