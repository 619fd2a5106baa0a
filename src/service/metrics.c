/*
 * metrics — see include/service/metrics.h.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "service/metrics.h"
#include "util/synclog.h"

void
metrics_format_count(unsigned long long n, char *buf, size_t size)
{
	char digits[32];
	int len = snprintf(digits, sizeof digits, "%llu", n);
	size_t k = 0;

	for (int i = 0; i < len && k + 2 < size; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[k++] = ',';
		buf[k++] = digits[i];
	}
	buf[k] = '\0';
}

/* Totals of a pair over its destinations. */
typedef struct Totals {
	unsigned long long queue, files, bytes, deletes, renames, errors;
	time_t oldest_full;	/* 0: some destination never finished one */
} Totals;

static void
totals(const PairStatus *p, Totals *t)
{
	memset(t, 0, sizeof *t);
	t->queue = p->live.queue;
	for (size_t k = 0; k < p->live.n_dests; k++) {
		const LiveDestStats *d = &p->live.dests[k];
		t->files += d->files_copied;
		t->bytes += d->bytes_copied;
		t->deletes += d->deletes;
		t->renames += d->renames;
		t->errors += d->errors;
		if (k == 0 || d->last_full_end == 0 ||
		    (t->oldest_full != 0 && d->last_full_end < t->oldest_full))
			t->oldest_full = d->last_full_end;
	}
}

/* "never", "12 s ago", "5 min ago", "3 h ago", "2 d ago" */
static void
format_ago(time_t then, time_t now, char *buf, size_t size)
{
	long long s = (long long)(now - then);

	if (then == 0)
		snprintf(buf, size, "never");
	else if (s < 0)
		snprintf(buf, size, "just now");
	else if (s < 120)
		snprintf(buf, size, "%lld s ago", s);
	else if (s < 7200)
		snprintf(buf, size, "%lld min ago", s / 60);
	else if (s < 172800)
		snprintf(buf, size, "%lld h ago", s / 3600);
	else
		snprintf(buf, size, "%lld d ago", s / 86400);
}

#define N_COLS 9
static const char *const headers[N_COLS] = {
	"SYNC", "STATE", "QUEUE", "FILES", "BYTES", "DELETES", "ERRORS",
	"LAST FULL COMPARE", "WATCHES",
};
/* Numbers right-aligned, words left. */
static const bool right[N_COLS] = {
	false, false, true, true, true, true, true, false, true,
};

typedef char Cell[64];

static void
row_cells(const PairStatus *p, time_t now, Cell *c)
{
	Totals t;

	totals(p, &t);
	snprintf(c[0], sizeof c[0], "%s", p->name);
	snprintf(c[1], sizeof c[1], "%s", live_state_name(p->live.state));
	metrics_format_count(t.queue, c[2], sizeof c[2]);
	metrics_format_count(t.files, c[3], sizeof c[3]);
	synclog_format_size(t.bytes, c[4], sizeof c[4]);
	metrics_format_count(t.deletes, c[5], sizeof c[5]);
	metrics_format_count(t.errors, c[6], sizeof c[6]);
	format_ago(t.oldest_full, now, c[7], sizeof c[7]);
	metrics_format_count(p->watches, c[8], sizeof c[8]);
}

static void
put_row(struct evbuffer *out, Cell *c, const int *width)
{
	for (int i = 0; i < N_COLS; i++)
		evbuffer_add_printf(out, "%s%*s%s", i ? "  " : "",
		    right[i] ? width[i] : -width[i], c[i],
		    i == N_COLS - 1 ? "\n" : "");
}

/* A destination's lines under its pair's row. */
static void
text_dest(struct evbuffer *out, const PairStatus *p, const LiveDestStats *d,
    time_t now)
{
	char q[32], f[32], b[32], e[32], ago[32];

	metrics_format_count(d->pending, q, sizeof q);
	metrics_format_count(d->files_copied, f, sizeof f);
	synclog_format_size(d->bytes_copied, b, sizeof b);
	metrics_format_count(d->errors, e, sizeof e);
	/* One destination: the row says it all but where. */
	if (p->live.n_dests == 1)
		evbuffer_add_printf(out, "  -> %s\n", d->path);
	else
		evbuffer_add_printf(out, "  -> %s: %s, queue %s, %s files, %s, "
		    "%s errors\n", d->path, live_state_name(d->state), q, f, b,
		    e);
	if (d->away) {
		format_ago(d->away_since, now, ago, sizeof ago);
		evbuffer_add_printf(out, "     offline since %s%s%s, %s paths "
		    "pending\n", ago, d->away_reason[0] ? ": " : "",
		    d->away_reason, q);
	}
	if (d->last_error_time != 0) {
		format_ago(d->last_error_time, now, ago, sizeof ago);
		evbuffer_add_printf(out, "     last error (%s): %s\n", ago,
		    d->last_error);
	}
}

void
metrics_status_text(const DaemonStatus *st, struct evbuffer *out)
{
	int width[N_COLS];
	Cell *cells = calloc(st->n_pairs + 1, sizeof(Cell[N_COLS]));

	evbuffer_add_printf(out, "treesyncd %s, pid %ld, config %s\n\n",
	    st->version, (long)st->pid, st->config_path);
	if (st->n_pairs == 0) {
		evbuffer_add_printf(out, "no sync pairs configured\n");
		free(cells);
		return;
	}
	if (cells == NULL) {
		evbuffer_add_printf(out, "out of memory\n");
		return;
	}
	for (int i = 0; i < N_COLS; i++) {
		snprintf(cells[i], sizeof cells[i], "%s", headers[i]);
		width[i] = (int)strlen(headers[i]);
	}
	for (size_t r = 0; r < st->n_pairs; r++) {
		Cell *c = cells + (r + 1) * N_COLS;
		row_cells(&st->pairs[r], st->now, c);
		for (int i = 0; i < N_COLS; i++)
			if ((int)strlen(c[i]) > width[i])
				width[i] = (int)strlen(c[i]);
	}
	put_row(out, cells, width);
	for (size_t r = 0; r < st->n_pairs; r++) {
		const PairStatus *p = &st->pairs[r];

		put_row(out, cells + (r + 1) * N_COLS, width);
		if (p->live.fault != NULL)
			evbuffer_add_printf(out, "  ! %s\n", p->live.fault);
		if (p->live.failing_paths > 0 && p->live.next_attempt_ms >= 0)
			evbuffer_add_printf(out, "  retrying %zu path%s, next "
			    "attempt in %.1f s\n", p->live.failing_paths,
			    p->live.failing_paths == 1 ? "" : "s",
			    p->live.next_attempt_ms / 1000.0);
		for (size_t k = 0; k < p->live.n_dests; k++)
			text_dest(out, p, &p->live.dests[k], st->now);
	}
	free(cells);
}

/* ---- systemd's STATUS= --------------------------------------------------- */

void
metrics_status_line(const DaemonStatus *st, char *buf, size_t size)
{
	size_t count[LIVE_N_STATES] = { 0 }, queued = 0, len = 0;
	const char *last_error = NULL;
	time_t last_time = 0;
	char q[32];

	for (size_t r = 0; r < st->n_pairs; r++) {
		const LiveStats *p = &st->pairs[r].live;

		count[p->state]++;
		queued += p->queue;
		if (p->state == LIVE_ERROR && p->last_error != NULL &&
		    p->last_error_time >= last_time) {
			last_error = p->last_error;
			last_time = p->last_error_time;
		}
	}
	if (count[LIVE_IDLE] == st->n_pairs) {
		snprintf(buf, size, "idle: %zu pair%s in sync", st->n_pairs,
		    st->n_pairs == 1 ? "" : "s");
		return;
	}
	buf[0] = '\0';
	/* Worst first: "error 1/4 pairs, syncing 2/4 pairs, ..." */
	for (int i = LIVE_N_STATES - 1; i > LIVE_IDLE && len < size; i--)
		if (count[i] > 0)
			len += (size_t)snprintf(buf + len, size - len, "%s %zu/%zu "
			    "pairs, ", live_state_name((LiveState)i), count[i],
			    st->n_pairs);
	metrics_format_count(queued, q, sizeof q);
	if (len < size)
		len += (size_t)snprintf(buf + len, size - len, "%s file%s "
		    "queued", q, queued == 1 ? "" : "s");
	if (last_error != NULL && len < size)
		snprintf(buf + len, size - len, "; last error: %s", last_error);
}

/* ---- JSON ------------------------------------------------------------ */

static void
json_string(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			evbuffer_add_printf(out, "\\u%04x", ch);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

static void
json_time(struct evbuffer *out, time_t t)
{
	if (t == 0)
		evbuffer_add_printf(out, "null");
	else
		evbuffer_add_printf(out, "%lld", (long long)t);
}

/* A duration in ms, or null (-1). */
static void
json_ms(struct evbuffer *out, int64_t ms)
{
	if (ms < 0)
		evbuffer_add_printf(out, "null");
	else
		evbuffer_add_printf(out, "%lld", (long long)ms);
}

static void
json_dest(struct evbuffer *out, const LiveDestStats *d)
{
	evbuffer_add_printf(out, "{\"path\": ");
	json_string(out, d->path);
	evbuffer_add_printf(out, ", \"state\": \"%s\", \"queue\": %zu, "
	    "\"jobs\": %zu, \"files_copied\": %llu, \"bytes_copied\": %llu, "
	    "\"deletes\": %llu, \"renames\": %llu, \"errors\": %llu, "
	    "\"last_error\": ", live_state_name(d->state), d->pending,
	    d->jobs_out, (unsigned long long)d->files_copied,
	    (unsigned long long)d->bytes_copied,
	    (unsigned long long)d->deletes, (unsigned long long)d->renames,
	    (unsigned long long)d->errors);
	if (d->last_error_time != 0)
		json_string(out, d->last_error);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ", \"last_error_time\": ");
	json_time(out, d->last_error_time);
	evbuffer_add_printf(out, ", \"failing_paths\": %zu, "
	    "\"next_attempt_ms\": ", d->failing);
	json_ms(out, d->next_attempt_ms);
	evbuffer_add_printf(out, ", \"away_since\": ");
	json_time(out, d->away_since);
	evbuffer_add_printf(out, ", \"away_reason\": ");
	if (d->away_reason[0] != '\0')
		json_string(out, d->away_reason);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ", \"last_full_compare\": ");
	json_time(out, d->last_full_end);
	evbuffer_add_printf(out, ", \"full_compares\": %llu, "
	    "\"latency_count\": %llu, \"latency_sum_seconds\": %.6f}",
	    (unsigned long long)d->passes,
	    (unsigned long long)d->latency_count,
	    (double)d->latency_sum_usec / 1e6);
}

void
metrics_status_json(const DaemonStatus *st, struct evbuffer *out)
{
	evbuffer_add_printf(out, "{\"version\": ");
	json_string(out, st->version);
	evbuffer_add_printf(out, ", \"pid\": %ld, \"started\": %lld, "
	    "\"now\": %lld, \"config\": ", (long)st->pid,
	    (long long)st->started, (long long)st->now);
	json_string(out, st->config_path);
	evbuffer_add_printf(out, ", \"control_socket\": ");
	json_string(out, st->control_socket);
	evbuffer_add_printf(out, ", \"pairs\": [");
	for (size_t r = 0; r < st->n_pairs; r++) {
		const PairStatus *p = &st->pairs[r];
		Totals t;

		totals(p, &t);
		evbuffer_add_printf(out, "%s\n  {\"name\": ", r ? "," : "");
		json_string(out, p->name);
		evbuffer_add_printf(out, ", \"source\": ");
		json_string(out, p->source);
		evbuffer_add_printf(out, ", \"state\": \"%s\", \"paused\": %s, "
		    "\"degraded\": %s, \"watches\": %zu, \"events\": %llu, "
		    "\"overflows\": %llu, \"queue\": %llu, \"files_copied\": "
		    "%llu, \"bytes_copied\": %llu, \"deletes\": %llu, "
		    "\"renames\": %llu, \"errors\": %llu, \"last_error\": ",
		    live_state_name(p->live.state),
		    p->live.paused ? "true" : "false",
		    p->live.polling ? "true" : "false", p->watches,
		    (unsigned long long)p->live.events,
		    (unsigned long long)p->live.overflows, t.queue, t.files,
		    t.bytes, t.deletes, t.renames, t.errors);
		if (p->live.last_error != NULL)
			json_string(out, p->live.last_error);
		else
			evbuffer_add_printf(out, "null");
		evbuffer_add_printf(out, ", \"last_error_time\": ");
		json_time(out, p->live.last_error_time);
		evbuffer_add_printf(out, ", \"held\": %s, \"fault\": ",
		    p->live.held ? "true" : "false");
		if (p->live.fault != NULL)
			json_string(out, p->live.fault);
		else
			evbuffer_add_printf(out, "null");
		evbuffer_add_printf(out, ", \"failing_paths\": %zu, "
		    "\"next_attempt_ms\": ", p->live.failing_paths);
		json_ms(out, p->live.next_attempt_ms);
		evbuffer_add_printf(out, ", \"last_full_compare\": ");
		json_time(out, t.oldest_full);
		evbuffer_add_printf(out, ", \"destinations\": [");
		for (size_t k = 0; k < p->live.n_dests; k++) {
			evbuffer_add_printf(out, "%s\n    ", k ? "," : "");
			json_dest(out, &p->live.dests[k]);
		}
		evbuffer_add_printf(out, "]}");
	}
	evbuffer_add_printf(out, "]}\n");
}

/* ---- Prometheus ------------------------------------------------------ */

/* A label value: backslash, double quote and newline escaped. */
static void
prom_label(struct evbuffer *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(out, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add_printf(out, "\\n");
		else
			evbuffer_add(out, s, 1);
	}
}

static void
prom_head(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* name{sync="..."[,destination="..."]} */
static void
prom_start(struct evbuffer *out, const char *name, const PairStatus *p,
    const LiveDestStats *d)
{
	evbuffer_add_printf(out, "%s{sync=\"", name);
	prom_label(out, p->name);
	if (d != NULL) {
		evbuffer_add_printf(out, "\",destination=\"");
		prom_label(out, d->path);
	}
	evbuffer_add_printf(out, "\"");
}

typedef struct DestMetric {
	const char *name, *type, *help;
	size_t offset;		/* of a uint64_t (or size_t) in LiveDestStats */
	bool is_size;
} DestMetric;

#define U64(f) offsetof(LiveDestStats, f), false
#define SZ(f) offsetof(LiveDestStats, f), true

static const DestMetric dest_metrics[] = {
	{ "treesync_files_copied_total", "counter",
	  "Files copied into the destination.", U64(files_copied) },
	{ "treesync_bytes_copied_total", "counter",
	  "Bytes of file data copied into the destination.", U64(bytes_copied) },
	{ "treesync_deletes_total", "counter",
	  "Entries removed from the destination.", U64(deletes) },
	{ "treesync_renames_total", "counter",
	  "Renames applied in the destination.", U64(renames) },
	{ "treesync_errors_total", "counter",
	  "Paths or pass entries that failed to sync.", U64(errors) },
	{ "treesync_full_compares_total", "counter",
	  "Whole-tree compare-and-repair passes finished.", U64(passes) },
	{ "treesync_queue_depth", "gauge",
	  "Paths waiting to be synced.", SZ(pending) },
	{ "treesync_jobs_in_flight", "gauge",
	  "Jobs of this destination in the worker pool.", SZ(jobs_out) },
};

static unsigned long long
dest_value(const LiveDestStats *d, const DestMetric *m)
{
	const char *base = (const char *)d + m->offset;

	if (m->is_size)
		return *(const size_t *)(const void *)base;
	return *(const uint64_t *)(const void *)base;
}

static unsigned long long
pair_events(const PairStatus *p)
{
	return p->live.events;
}

static unsigned long long
pair_overflows(const PairStatus *p)
{
	return p->live.overflows;
}

static unsigned long long
pair_watches(const PairStatus *p)
{
	return p->watches;
}

/* A gauge of a time_t field of every destination (0: none). */
static void
prom_dest_time(struct evbuffer *out, const DaemonStatus *st, const char *name,
    const char *help, size_t offset)
{
	prom_head(out, name, "gauge", help);
	for (size_t r = 0; r < st->n_pairs; r++)
		for (size_t k = 0; k < st->pairs[r].live.n_dests; k++) {
			const LiveDestStats *d = &st->pairs[r].live.dests[k];
			const time_t *t = (const time_t *)(const void *)
			    ((const char *)d + offset);

			prom_start(out, name, &st->pairs[r], d);
			evbuffer_add_printf(out, "} %lld\n", (long long)*t);
		}
}

/* A family with one sample per pair (label sync only). */
static void
prom_pair(struct evbuffer *out, const DaemonStatus *st, const char *name,
    const char *type, const char *help,
    unsigned long long (*get)(const PairStatus *))
{
	prom_head(out, name, type, help);
	for (size_t r = 0; r < st->n_pairs; r++) {
		prom_start(out, name, &st->pairs[r], NULL);
		evbuffer_add_printf(out, "} %llu\n", get(&st->pairs[r]));
	}
}

void
metrics_prometheus(const DaemonStatus *st, struct evbuffer *out)
{

	for (size_t m = 0; m < sizeof dest_metrics / sizeof dest_metrics[0];
	    m++) {
		const DestMetric *dm = &dest_metrics[m];
		prom_head(out, dm->name, dm->type, dm->help);
		for (size_t r = 0; r < st->n_pairs; r++)
			for (size_t k = 0; k < st->pairs[r].live.n_dests; k++) {
				const LiveDestStats *d =
				    &st->pairs[r].live.dests[k];
				prom_start(out, dm->name, &st->pairs[r], d);
				evbuffer_add_printf(out, "} %llu\n",
				    dest_value(d, dm));
			}
	}
	prom_dest_time(out, st, "treesync_last_full_compare_timestamp_seconds",
	    "When the last whole-tree pass ended (0: never).",
	    offsetof(LiveDestStats, last_full_end));
	prom_dest_time(out, st, "treesync_last_error_timestamp_seconds",
	    "When the destination's last error happened (0: never).",
	    offsetof(LiveDestStats, last_error_time));
	prom_dest_time(out, st, "treesync_away_since_timestamp_seconds",
	    "Since when the destination is unreachable (0: it is not).",
	    offsetof(LiveDestStats, away_since));
	prom_pair(out, st, "treesync_events_total", "counter",
	    "Change events received for the pair.", pair_events);
	prom_pair(out, st, "treesync_overflows_total", "counter",
	    "Times events were lost (inotify queue overflow).",
	    pair_overflows);
	prom_pair(out, st, "treesync_watches", "gauge",
	    "Directories of the source watched by inotify.", pair_watches);
	prom_head(out, "treesync_state", "gauge",
	    "1 for the state the pair is in.");
	for (size_t r = 0; r < st->n_pairs; r++)
		for (int i = 0; i < LIVE_N_STATES; i++) {
			prom_start(out, "treesync_state", &st->pairs[r], NULL);
			evbuffer_add_printf(out, ",state=\"%s\"} %d\n",
			    live_state_name((LiveState)i),
			    st->pairs[r].live.state == (LiveState)i);
		}
	prom_head(out, "treesync_propagation_latency_seconds", "histogram",
	    "From a change event's arrival to the destination holding it.");
	for (size_t r = 0; r < st->n_pairs; r++)
		for (size_t k = 0; k < st->pairs[r].live.n_dests; k++) {
			const LiveDestStats *d = &st->pairs[r].live.dests[k];
			const char *h = "treesync_propagation_latency_seconds";
			char name[96];
			unsigned long long cum = 0;

			snprintf(name, sizeof name, "%s_bucket", h);
			for (size_t b = 0; b < LIVE_LATENCY_BUCKETS; b++) {
				uint64_t le = live_latency_bounds_usec[b];
				cum += d->latency_buckets[b];
				prom_start(out, name, &st->pairs[r], d);
				if (le == UINT64_MAX)
					evbuffer_add_printf(out, ",le=\"+Inf\"}"
					    " %llu\n", cum);
				else
					evbuffer_add_printf(out, ",le=\"%g\"} "
					    "%llu\n", (double)le / 1e6, cum);
			}
			snprintf(name, sizeof name, "%s_sum", h);
			prom_start(out, name, &st->pairs[r], d);
			evbuffer_add_printf(out, "} %.6f\n",
			    (double)d->latency_sum_usec / 1e6);
			snprintf(name, sizeof name, "%s_count", h);
			prom_start(out, name, &st->pairs[r], d);
			evbuffer_add_printf(out, "} %llu\n",
			    (unsigned long long)d->latency_count);
		}
}
