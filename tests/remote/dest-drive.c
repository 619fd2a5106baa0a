/*
 * dest-drive — one destination of a config's sync pair, driven through
 * the destination seam (dest/dest.h) by commands on stdin, answering one
 * JSON line per request on stdout: what tests/remote/test_remote_daemon.py
 * uses to exercise dest/remote.c against real sshds, request by request,
 * with the live planner out of the way.
 *
 *   dest-drive CONFIG PAIR DEST
 *   stdin, one command a line, fields separated by TAB:
 *     sync PATH...          a batch            -> {"batch":..., "items":[...]}
 *     rename FROM TO DIR... renames (DIR 0|1)   -> {"renames":..., "errs":[...]}
 *     compare RELROOT       a compare          -> {"compare":..., stats}
 *     state                                     -> {"state":"available"|"away", ...}
 *     wait-available SECONDS                    -> the state once available
 *     quit                  stops the destination, exits 0 once nothing is out
 * State changes are told as {"changed":...} lines. Requests may overlap:
 * each answer carries the request's number (its line number).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "dest/dest.h"
#include "dest/remote-host.h"
#include "engine/fsutil.h"
#include "service/config.h"
#include "util/synclog.h"

static struct event_base *base;
static Dest *dest;
static const SyncPairConfig *cur_pair;
static struct evbuffer *in;
static struct event *in_ev, *tick;
static unsigned long seq;
static size_t out_requests;
static bool quitting;
static double wait_until;

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void
print_state(const char *what, unsigned long n)
{
	DestState st;

	dest_state(dest, &st);
	printf("{\"%s\":%lu,\"state\":\"%s\",\"away_since\":%lld,\"reason\":",
	    what, n, st.availability == DEST_AVAILABLE ? "available" : "away",
	    (long long)st.away_since);
	json_str(st.reason ? st.reason : "");
	printf("}\n");
	fflush(stdout);
}

static void
maybe_exit(void)
{
	if (quitting && out_requests == 0 && dest_in_flight(dest) == 0)
		event_base_loopexit(base, NULL);
}

static void
batch_done(DestBatch *b)
{
	printf("{\"batch\":%lu,\"err\":%d,\"cancelled\":%s,\"fault\":%d,"
	    "\"items\":[", (unsigned long)(uintptr_t)b->arg, b->err,
	    b->cancelled ? "true" : "false", b->fault);
	for (size_t i = 0; i < b->n; i++) {
		const DestItem *it = &b->items[i];

		printf("%s{\"path\":", i ? "," : "");
		json_str(it->relpath);
		printf(",\"outcome\":%d,\"action\":%d,\"err\":%d,\"count\":%llu,"
		    "\"skipped\":%s,\"withheld\":%s,\"entries_changed\":%s}",
		    it->outcome, it->action, it->err,
		    (unsigned long long)it->count, it->skipped ? "true" :
		    "false", it->withheld ? "true" : "false",
		    it->entries_changed ? "true" : "false");
	}
	printf("]}\n");
	fflush(stdout);
	dest_batch_free(b);
	out_requests--;
	maybe_exit();
}

static void
renames_done(DestRenames *r)
{
	printf("{\"renames\":%lu,\"err\":%d,\"errs\":[",
	    (unsigned long)(uintptr_t)r->arg, r->err);
	for (size_t i = 0; i < r->n; i++)
		printf("%s%d", i ? "," : "", r->items[i].err);
	printf("]}\n");
	fflush(stdout);
	dest_renames_free(r);
	out_requests--;
	maybe_exit();
}

static void
compare_done(DestCompare *c, void *arg)
{
	const SyncStats *st = dest_compare_stats(c);

	printf("{\"compare\":%lu,\"err\":%d,\"fault\":%d,\"seen\":%llu,"
	    "\"copied\":%llu,\"bytes\":%llu,\"deleted\":%llu,\"errors\":%llu,"
	    "\"withheld\":%llu}\n", (unsigned long)(uintptr_t)arg, c->err,
	    st->fault, (unsigned long long)st->entries_seen,
	    (unsigned long long)st->files_copied,
	    (unsigned long long)st->bytes_copied,
	    (unsigned long long)st->deleted, (unsigned long long)st->errors,
	    (unsigned long long)st->withheld);
	fflush(stdout);
	dest_compare_free(c);
	out_requests--;
	maybe_exit();
}

static void
changed(Dest *d, void *arg)
{
	(void)d;
	(void)arg;
	print_state("changed", seq);
}

/* Fields of line split at TAB, in place. */
static size_t
split(char *line, char **f, size_t max)
{
	size_t n = 0;

	while (n < max) {
		f[n++] = line;
		line = strchr(line, '\t');
		if (line == NULL)
			break;
		*line++ = '\0';
	}
	return n;
}

static void
command(char *line)
{
	char *f[65536];
	size_t n = split(line, f, sizeof f / sizeof f[0]);
	static FullSyncOptions opt;

	seq++;
	if (strcmp(f[0], "sync") == 0) {
		DestBatch *b = dest_batch_new(n - 1);

		b->opt.rules.delete = cur_pair->delete;
		b->opt.rules.compare = cur_pair->compare;
		b->opt.rules.preserve_owner = geteuid() == 0;
		b->done = batch_done;
		b->arg = (void *)(uintptr_t)seq;
		for (size_t i = 1; i < n; i++)
			dest_batch_add(b, f[i]);
		out_requests++;
		dest_sync_paths(dest, b);
	} else if (strcmp(f[0], "rename") == 0) {
		DestRenames *r = dest_renames_new((n - 1) / 3);

		r->done = renames_done;
		r->arg = (void *)(uintptr_t)seq;
		for (size_t i = 1; i + 2 < n; i += 3)
			dest_renames_add(r, f[i], f[i + 1], f[i + 2][0] == '1');
		out_requests++;
		dest_rename(dest, r);
	} else if (strcmp(f[0], "compare") == 0) {
		DestCompare *c;

		opt.preserve_owner = geteuid() == 0;
		out_requests++;
		if (dest_compare(dest, n > 1 ? f[1] : "", &opt, compare_done,
		    (void *)(uintptr_t)seq, &c) < 0) {
			printf("{\"compare\":%lu,\"err\":-1}\n", seq);
			out_requests--;
		}
	} else if (strcmp(f[0], "state") == 0) {
		print_state("state", seq);
	} else if (strcmp(f[0], "quit") == 0) {
		quitting = true;
		dest_stop(dest);
		maybe_exit();
	}
}

static void
on_stdin(evutil_socket_t fd, short what, void *arg)
{
	char *line;
	size_t len;
	int r;

	(void)what;
	(void)arg;
	r = evbuffer_read(in, fd, 1 << 20);
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		command(line);
		free(line);
	}
	if (r <= 0) {
		event_del(in_ev);
		quitting = true;
		dest_stop(dest);
		maybe_exit();
	}
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	(void)wait_until;
	maybe_exit();
}

int
main(int argc, char **argv)
{
	const SyncPairConfig *pair;
	struct timeval tv = { 0, 200000 };
	Config *cfg;
	char *errors;
	Pool *pool;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: dest-drive CONFIG PAIR DEST\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (config_load(argv[1], &cfg, &errors) < 0) {
		fprintf(stderr, "%s", errors);
		return 2;
	}
	pair = config_find_sync(cfg, argv[2]);
	if (pair == NULL)
		return 2;
	cur_pair = pair;
	synclog_open(cfg->log_file, cfg->log_level);
	fsutil_init_temp_tag();
	base = event_base_new();
	if (pool_new(base, 2, &pool) < 0)
		return 1;
	if ((r = dest_new(base, pool, pair, argv[3], &dest)) < 0) {
		fprintf(stderr, "dest_new: %s\n", strerror(-r));
		return 1;
	}
	dest_set_listener(dest, changed, NULL);
	in = evbuffer_new();
	in_ev = event_new(base, 0, EV_READ | EV_PERSIST, on_stdin, NULL);
	event_add(in_ev, NULL);
	tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	event_add(tick, &tv);
	event_base_dispatch(base);
	event_free(in_ev);
	event_free(tick);
	evbuffer_free(in);
	dest_free(dest);
	remote_host_stop_all();
	pool_free(pool);
	event_base_free(base);
	config_free(cfg);
	synclog_close();
	return 0;
}
