/*
 * synclog-writer — the sync log's writer thread (see include/util/synclog.h
 * and synclog-int.h). Runs on a thread of its own; the reactor's side of
 * it is writer_start, writer_put, writer_reopen and writer_stop.
 *
 * DESIGN
 * One producer (the reactor) and one consumer (this thread), as
 * memcached's logger thread drains its workers' buffers. The reactor
 * appends each finished line to `queue` under `lock` (a memcpy: it never
 * waits on the disk) and signals `wake` when the queue was empty. The
 * writer swaps `queue` with its own `batch` buffer under the lock and
 * writes the batch with the lock released, so a write that blocks (a full
 * pipe, a stalled disk, journald's full socket) holds only this thread.
 *
 * Bound: bytes queued plus bytes taken and not yet written stay under
 * `limit`. A line that does not fit is dropped and counted; the count
 * becomes one line "log: N lines dropped: ..." placed where the lines
 * went missing: by the writer at the end of the queue when it finishes a
 * batch, or by the reactor before the next line it accepts, whichever
 * comes first (both under the lock, so each count is said once, in order).
 *
 * Reopen (SIGUSR1): the reactor marks the queue's current length; the
 * writer writes the batch up to the mark to the old file, opens the path
 * again, and writes the rest to the new one.
 *
 * Stop: the reactor sets `stopping` and waits on `progress` while the
 * writer empties the queue. A writer that writes nothing for exit_wait_ms
 * is cancelled: cancellation is enabled only around write(2), open(2) and
 * sd_journal_sendv, where such a writer is blocked, never while it holds
 * the lock. What it still held is counted on stderr.
 * The thread blocks every signal, so they reach the reactor's loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "util/alloc.h"
#include "synclog-int.h"

#define NO_MARK SIZE_MAX
#define JOURNAL_FIELDS_MAX 8
#define DIRECT_MAX (SYNCLOG_LINE_MAX + 512)
#define WRITE_STEP (16u << 10)

typedef struct Buf {
	char *p;
	size_t len, cap;
} Buf;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* the writer waits: work, or stop */
	pthread_cond_t progress;	/* writer_stop waits (CLOCK_MONOTONIC) */
	Buf queue;			/* the reactor appends (lock) */
	Buf batch;			/* the writer's, while it writes it */
	size_t taken;			/* bytes of batch not written yet (lock) */
	size_t limit;
	unsigned long long dropped;	/* lines refused since the last count */
	unsigned long long written;	/* bytes written, for writer_stop */
	unsigned long long started;	/* batches taken, for writer_flush */
	unsigned long long finished;	/* batches done with, written or not */
	size_t reopen_at;		/* queue offset of a reopen; NO_MARK */
	bool reopen_info;
	bool stopping;
	bool exited;
	/* Set before the thread starts, or the writer's own: */
	bool running;
	bool journal;
	int fd;				/* the writer's while it runs */
	char *path;
	int exit_wait_ms;
	pthread_t thread;
} w = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.reopen_at = NO_MARK,
	.fd = -1,
};

static size_t
encoded_size(bool journal, const struct iovec *iov, int n)
{
	size_t size = journal ? 4 : 0;

	for (int i = 0; i < n; i++)
		size += iov[i].iov_len + (journal ? 4 : 0);
	return size;
}

/*
 * Appends one entry to b: the pieces one after the other (text), or a
 * journal record: a u32 count, then per field a u32 length and its bytes.
 */
static void
encode(Buf *b, bool journal, const struct iovec *iov, int n)
{
	size_t need = encoded_size(journal, iov, n);
	uint32_t u;

	xgrow(&b->p, &b->cap, b->len + need, 1, 4096);
	if (journal) {
		u = (uint32_t)n;
		memcpy(b->p + b->len, &u, 4);
		b->len += 4;
	}
	for (int i = 0; i < n; i++) {
		if (journal) {
			u = (uint32_t)iov[i].iov_len;
			memcpy(b->p + b->len, &u, 4);
			b->len += 4;
		}
		memcpy(b->p + b->len, iov[i].iov_base, iov[i].iov_len);
		b->len += iov[i].iov_len;
	}
}

/* What the missing lines were waiting for, for the count's line. */
static const char *
culprit(void)
{
	if (w.journal)
		return "the journal did not take them fast enough";
	if (w.path == NULL)
		return "standard error was not writable fast enough";
	return "the log file was not writable fast enough";
}

/*
 * Formats one line of the writer's own (the dropped count, a reopen) as
 * an entry: text with its time, or journal fields. Returns the pieces.
 */
static int
own_line(char *line, size_t size, char *prio, size_t prio_size,
    LogLevel level, struct iovec *iov, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static int
own_line(char *line, size_t size, char *prio, size_t prio_size,
    LogLevel level, struct iovec *iov, const char *fmt, ...)
{
	size_t t, n, time_len;
	va_list ap;
	int k;

	t = synclog_prefix(line, size, level, &time_len);
	va_start(ap, fmt);
	k = vsnprintf(line + t, size - t - 1, fmt, ap);
	va_end(ap);
	n = t + (k < 0 ? 0 : (size_t)k >= size - t - 1 ? size - t - 2 :
	    (size_t)k);
	if (!w.journal) {
		line[n++] = '\n';
		iov[0] = (struct iovec){ line, n };
		return 1;
	}
	/* The journal stamps its own time: "MESSAGE=" over it. */
	memcpy(line + time_len - 8, "MESSAGE=", 8);
	iov[0] = (struct iovec){ line + time_len - 8, n - (time_len - 8) };
	snprintf(prio, prio_size, "PRIORITY=%d", synclog_priority(level));
	iov[1] = (struct iovec){ prio, strlen(prio) };
	return 2;
}

/* The dropped count as a line at the end of the queue. Under the lock. */
static void
put_dropped_locked(void)
{
	char line[512], prio[32];
	struct iovec iov[2];
	int n;

	n = own_line(line, sizeof line, prio, sizeof prio, LOG_LEVEL_WARN, iov,
	    "log: %llu line%s dropped: %s", w.dropped, w.dropped == 1 ? "" :
	    "s", culprit());
	encode(&w.queue, w.journal, iov, n);
	w.dropped = 0;
}

/* errno-preserving toggles around the calls where a stuck writer waits. */
static void
cancel_point_begin(void)
{
	int e = errno, old;

	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
	errno = e;
}

static void
cancel_point_end(void)
{
	int e = errno, old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	errno = e;
}

static void
count_written(size_t n)
{
	pthread_mutex_lock(&w.lock);
	w.taken -= n < w.taken ? n : w.taken;
	w.written += n;
	pthread_cond_broadcast(&w.progress);
	pthread_mutex_unlock(&w.lock);
}

/*
 * Writes p[0..len) to the log; gives up on the rest at an error. counted:
 * the bytes are the batch's (the backlog shrinks as they go).
 */
static void
write_text(const char *p, size_t len, bool counted)
{
	while (len > 0) {
		ssize_t n;

		/* In steps: a blocking write returns only when all of it is
		 * in, and writer_stop judges progress by what came back. */
		cancel_point_begin();
		n = write(w.fd, p, len < WRITE_STEP ? len : WRITE_STEP);
		cancel_point_end();
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (counted)
				count_written(len);
			return;
		}
		if (counted)
			count_written((size_t)n);
		p += n;
		len -= (size_t)n;
	}
}

/* Sends each journal record in p[0..len). */
static void
send_records(const char *p, size_t len)
{
	const char *end = p + len;

	while (end - p >= 4) {
		struct iovec iov[JOURNAL_FIELDS_MAX];
		const char *start = p;
		uint32_t n, l;

		memcpy(&n, p, 4);
		p += 4;
		for (uint32_t i = 0; i < n && i < JOURNAL_FIELDS_MAX; i++) {
			memcpy(&l, p, 4);
			iov[i] = (struct iovec){ (void *)(p + 4), l };
			p += 4 + l;
		}
#ifdef HAVE_LIBSYSTEMD
		cancel_point_begin();
		sd_journal_sendv(iov, (int)n);
		cancel_point_end();
#endif
		count_written((size_t)(p - start));
	}
}

static void
output(const char *p, size_t len)
{
	if (w.journal)
		send_records(p, len);
	else
		write_text(p, len, true);
}

/* SIGUSR1: the path again (logrotate moved the file away). */
static void
reopen_now(bool info)
{
	char line[SYNCLOG_LINE_MAX], prio[32];
	struct iovec iov[2];
	int fd, e;

	cancel_point_begin();
	fd = open(w.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	cancel_point_end();
	if (fd < 0) {
		e = errno;
		own_line(line, sizeof line, prio, sizeof prio,
		    LOG_LEVEL_ERROR, iov, "cannot reopen the log file '%s': "
		    "%s; writing to the one open before", w.path, strerror(e));
	} else {
		if (w.fd != STDERR_FILENO)
			close(w.fd);
		w.fd = fd;
		if (!info)
			return;
		own_line(line, sizeof line, prio, sizeof prio,
		    LOG_LEVEL_INFO, iov, "log file reopened");
	}
	/* Text mode only: the journal has no file to reopen. */
	write_text(iov[0].iov_base, iov[0].iov_len, false);
}

static void *
writer_main(void *arg)
{
	int old;

	(void)arg;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_mutex_lock(&w.lock);
	for (;;) {
		size_t mark;
		bool info;
		Buf tmp;

		while (w.queue.len == 0 && w.reopen_at == NO_MARK &&
		    !w.stopping)
			pthread_cond_wait(&w.wake, &w.lock);
		if (w.queue.len == 0 && w.reopen_at == NO_MARK)
			break;	/* stopping, and everything is written */
		tmp = w.batch;
		w.batch = w.queue;
		w.queue = tmp;
		w.queue.len = 0;
		w.taken = w.batch.len;
		w.started++;
		mark = w.reopen_at;
		info = w.reopen_info;
		w.reopen_at = NO_MARK;
		pthread_mutex_unlock(&w.lock);

		if (mark == NO_MARK) {
			output(w.batch.p, w.batch.len);
		} else {
			output(w.batch.p, mark);
			reopen_now(info);
			output(w.batch.p + mark, w.batch.len - mark);
		}

		pthread_mutex_lock(&w.lock);
		w.taken = 0;
		w.batch.len = 0;
		w.finished++;
		if (w.dropped > 0)
			put_dropped_locked();
		pthread_cond_broadcast(&w.progress);
	}
	w.exited = true;
	pthread_cond_broadcast(&w.progress);
	pthread_mutex_unlock(&w.lock);
	return NULL;
}

int
writer_start(int fd, const char *path, bool journal, size_t limit,
    int exit_wait_ms)
{
	pthread_condattr_t attr;
	sigset_t all, old;
	int r;

	if (w.running)
		return -EBUSY;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.progress, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&w.wake, NULL);
	w.fd = fd;
	w.path = path != NULL ? xstrdup(path) : NULL;
	w.journal = journal;
	w.limit = limit;
	w.exit_wait_ms = exit_wait_ms;
	w.stopping = w.exited = false;
	w.dropped = w.written = 0;
	w.reopen_at = NO_MARK;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&w.thread, NULL, writer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		free(w.path);
		w.path = NULL;
		w.fd = -1;
		pthread_cond_destroy(&w.progress);
		pthread_cond_destroy(&w.wake);
		return -r;
	}
	w.running = true;
	return 0;
}

bool
writer_running(void)
{
	return w.running;
}

/* No writer: the entry at once, in one write(2) or one journal entry. */
static void
put_direct(int fd, bool journal, const struct iovec *iov, int n)
{
	char buf[DIRECT_MAX];
	size_t len = 0;

#ifdef HAVE_LIBSYSTEMD
	if (journal) {
		sd_journal_sendv(iov, n);
		return;
	}
#else
	(void)journal;
#endif
	for (int i = 0; i < n; i++) {
		size_t k = iov[i].iov_len < sizeof buf - len ?
		    iov[i].iov_len : sizeof buf - len;

		memcpy(buf + len, iov[i].iov_base, k);
		len += k;
	}
	for (size_t off = 0; off < len;) {
		ssize_t k = write(fd, buf + off, len - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		off += (size_t)k;
	}
}

void
writer_put(int fd, bool journal, const struct iovec *iov, int n)
{
	size_t need;
	bool was_empty;

	if (!w.running) {
		put_direct(fd, journal, iov, n);
		return;
	}
	need = encoded_size(w.journal, iov, n);
	pthread_mutex_lock(&w.lock);
	/* 512: room for the dropped count that goes first. */
	if (w.queue.len + w.taken + need + (w.dropped > 0 ? 512 : 0) >
	    w.limit) {
		w.dropped++;
		pthread_mutex_unlock(&w.lock);
		return;
	}
	was_empty = w.queue.len == 0;
	if (w.dropped > 0)
		put_dropped_locked();
	encode(&w.queue, w.journal, iov, n);
	if (was_empty)
		pthread_cond_signal(&w.wake);
	pthread_mutex_unlock(&w.lock);
}

void
writer_reopen(bool info)
{
	if (!w.running || w.path == NULL)
		return;
	pthread_mutex_lock(&w.lock);
	if (w.reopen_at == NO_MARK) {
		w.reopen_at = w.queue.len;
		w.reopen_info = info;
	}
	pthread_cond_signal(&w.wake);
	pthread_mutex_unlock(&w.lock);
}

static size_t
count_lines(const char *p, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; p != NULL && i < len; i++)
		n += p[i] == '\n';
	return n;
}

/* exit_wait_ms from now, on CLOCK_MONOTONIC (the progress condvar's). */
static struct timespec
exit_deadline(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += w.exit_wait_ms / 1000;
	t.tv_nsec += (long)(w.exit_wait_ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

/* Waits for the writer to finish; false when it made no progress in time. */
static bool
wait_writer_locked(void)
{
	unsigned long long seen = w.written;
	struct timespec deadline = exit_deadline();

	while (!w.exited) {
		int r = pthread_cond_timedwait(&w.progress, &w.lock, &deadline);

		if (w.written != seen) {
			seen = w.written;
			deadline = exit_deadline();
		} else if (r == ETIMEDOUT) {
			return false;
		}
	}
	return true;
}

/*
 * Waits until every line queued before this call is written, for at most
 * wait_ms: what is queued after the call does not extend the wait.
 */
bool
writer_flush(int wait_ms)
{
	unsigned long long target;
	struct timespec deadline;
	bool done = true;

	if (!w.running)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += wait_ms / 1000;
	deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w.lock);
	/* The batch being written, and the queue as the next one. */
	target = w.started + (w.queue.len > 0 || w.reopen_at != NO_MARK);
	while (!w.exited && w.finished < target) {
		if (pthread_cond_timedwait(&w.progress, &w.lock, &deadline) ==
		    ETIMEDOUT) {
			done = w.finished >= target;
			break;
		}
	}
	pthread_mutex_unlock(&w.lock);
	return done;
}

void
writer_stop(void)
{
	size_t left = 0;
	bool done;

	if (!w.running)
		return;
	pthread_mutex_lock(&w.lock);
	w.stopping = true;
	pthread_cond_signal(&w.wake);
	done = wait_writer_locked();
	if (!done) {
		left = w.journal ? 0 : count_lines(w.queue.p, w.queue.len);
		if (!w.journal && w.batch.p != NULL)
			left += count_lines(w.batch.p + (w.batch.len - w.taken),
			    w.taken);
		left += w.dropped;
	}
	pthread_mutex_unlock(&w.lock);
	if (!done)
		pthread_cancel(w.thread);
	pthread_join(w.thread, NULL);
	/* Not when stderr is the log: it is what does not move. */
	if (!done && w.path != NULL)
		fprintf(stderr, "treesync: log: about %zu line%s not written at "
		    "exit: '%s' took nothing for %d ms\n", left, left == 1 ?
		    "" : "s", w.path, w.exit_wait_ms);
	if (w.fd >= 0 && w.fd != STDERR_FILENO)
		close(w.fd);
	w.fd = -1;
	free(w.path);
	w.path = NULL;
	free(w.queue.p);
	free(w.batch.p);
	w.queue = w.batch = (Buf){ 0 };
	w.taken = 0;
	w.dropped = 0;
	w.reopen_at = NO_MARK;
	pthread_cond_destroy(&w.progress);
	pthread_cond_destroy(&w.wake);
	w.running = false;
}
