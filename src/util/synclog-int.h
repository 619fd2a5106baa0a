/*
 * synclog-int — what synclog.c (the lines, on the reactor) and
 * synclog-writer.c (the writer thread) share. Private to src/util/synclog*.
 */
#ifndef TREESYNC_SYNCLOG_INT_H
#define TREESYNC_SYNCLOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "util/synclog.h"

#define SYNCLOG_LINE_MAX 8192

/*
 * "2026-11-24T13:45:01.123Z info  " into buf; returns its length, and in
 * *time_len the length of the time with its space. Any thread.
 */
size_t synclog_prefix(char *buf, size_t size, LogLevel level,
    size_t *time_len);

/* The syslog priority of a level, for the journal's PRIORITY=. */
int synclog_priority(LogLevel level);

/*
 * The writer (synclog-writer.c). Reactor side: writer_start, writer_put,
 * writer_reopen, writer_stop; the thread itself is private to that file.
 *
 * writer_start takes fd (the log file, or STDERR_FILENO) and path (NULL
 * for stderr and the journal; copied); journal: records are journal
 * fields. Returns 0 or -errno (no thread: the caller writes directly).
 */
int writer_start(int fd, const char *path, bool journal, size_t limit,
    int exit_wait_ms);
bool writer_running(void);
/*
 * Queues one line: in text mode the pieces are written one after the
 * other; in journal mode each piece is one "FIELD=value" of one entry.
 * Without a writer, writes at once to fd (text) or the journal.
 */
void writer_put(int fd, bool journal, const struct iovec *iov, int n);
/* Reopens path once what is queued now is written; info: log the success. */
void writer_reopen(bool info);
/* Waits (at most wait_ms) for what is queued now to be written. */
bool writer_flush(int wait_ms);
/* Writes what is queued (see synclog_close) and ends the thread. */
void writer_stop(void);

#endif
