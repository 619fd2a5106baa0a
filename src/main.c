/*
 * main — treesyncd: arguments, start-up, the one-shot full sync (--once),
 * exit codes. Exit status: 0 success, 1 runtime failure, 2 usage or config
 * error (SPEC "Programs").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "service/config.h"
#include "engine/copy.h"
#include "service/daemon.h"
#include "engine/fsutil.h"
#include "engine/fullsync.h"
#include "engine/itemize.h"
#include "engine/pool.h"
#include "util/synclog.h"

#ifndef TREESYNC_VERSION
#define TREESYNC_VERSION "unknown"
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

typedef struct Once {
	struct event_base *base;
	Pool *pool;
	FullSync **passes;
	ItemList *items;	/* --dry-run: one list per pass */
	const SyncPairConfig **pairs;	/* each pass's pair */
	bool dry_run;
	size_t n_passes;
	size_t n_finished;
	struct timespec started;
	struct event *progress;
	bool interrupted;
	size_t remote_skipped;	/* remote destinations: not --once's */
} Once;

static void
usage(FILE *out)
{
	fprintf(out,
"Usage: treesyncd [OPTION]...\n"
"Mirror source directory trees into destinations, as the config file says:\n"
"a full sync at start, then every change as it happens (inotify).\n"
"\n"
"  -c, --config FILE     config file (default " CONFIG_DEFAULT_PATH ")\n"
"  -f, --foreground      stay in the foreground (treesyncd never forks; the\n"
"                        systemd unit runs it so); log to stderr unless the\n"
"                        config names a log_file\n"
"      --once            full sync of every sync pair, then exit: 0 when every\n"
"                        destination matches its source, 1 when some entries\n"
"                        failed (each is listed in the log)\n"
"      --dry-run         with --once: compare only, change nothing; list what\n"
"                        a full sync would copy, change and delete, one\n"
"                        itemized line per entry (as rsync -n -i does); exit 0\n"
"                        when nothing would change, 1 when something would\n"
"  -t, --check-config    check the config file, print each problem as\n"
"                        FILE:LINE: message; exit 0 when valid, 2 when not\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Signals: SIGHUP reloads the config (an invalid one is logged and the\n"
"running one kept), SIGUSR1 reopens the log file, SIGTERM/SIGINT stop.\n"
"Exit status: 0 success, 1 runtime failure, 2 usage or config error.\n"
"Under systemd (Type=notify) it reports READY, STATUS and watchdog pings,\n"
"and logs to the journal when no log_file is set.\n"
"See treesyncd(8) and treesync.conf(5).\n");
}

static double
elapsed_s(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* Sums the figures of every pass into *total. */
static void
sum_stats(const Once *once, SyncStats *total)
{
	memset(total, 0, sizeof *total);
	total->scan_done = true;
	for (size_t i = 0; i < once->n_passes; i++) {
		const SyncStats *s = fullsync_stats(once->passes[i]);
		total->entries_seen += s->entries_seen;
		total->bytes_seen += s->bytes_seen;
		total->entries_done += s->entries_done;
		total->bytes_done += s->bytes_done;
		total->files_copied += s->files_copied;
		total->bytes_copied += s->bytes_copied;
		total->deleted += s->deleted;
		total->errors += s->errors;
		/* Deletes held back by max_delete make the run unfinished. */
		total->errors += s->withheld != 0;
		if (!s->scan_done)
			total->scan_done = false;
	}
}

/* The TTY progress line: files and bytes done of total, rate, ETA. */
static void
on_progress(evutil_socket_t fd, short what, void *arg)
{
	Once *once = arg;
	SyncStats t;
	char done[32], total[32], rate[32], line[200];
	double secs = elapsed_s(&once->started);
	double bps;

	(void)fd;
	(void)what;
	sum_stats(once, &t);
	bps = secs > 0 ? (double)t.bytes_copied / secs : 0;
	synclog_format_size(t.bytes_done, done, sizeof done);
	synclog_format_size(t.bytes_seen, total, sizeof total);
	synclog_format_size((unsigned long long)bps, rate, sizeof rate);
	if (t.scan_done && bps > 0 && t.bytes_seen > t.bytes_done) {
		double eta = (double)(t.bytes_seen - t.bytes_done) / bps;
		snprintf(line, sizeof line, "%llu/%llu files, %s/%s, %s/s, "
		    "ETA %.0f s", (unsigned long long)t.entries_done,
		    (unsigned long long)t.entries_seen, done, total, rate, eta);
	} else {
		snprintf(line, sizeof line, "%llu/%llu%s files, %s/%s%s, %s/s",
		    (unsigned long long)t.entries_done,
		    (unsigned long long)t.entries_seen,
		    t.scan_done ? "" : "+", done, total,
		    t.scan_done ? "" : "+ (scanning)", rate);
	}
	synclog_set_progress(line);
}

static void
on_pass_done(FullSync *fs, void *arg)
{
	Once *once = arg;
	const SyncStats *s = fullsync_stats(fs);
	char copied[32];

	if (once->dry_run) {
		/* Nothing was copied: say what was compared. */
		synclog_msg(s->errors ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
		    "%s: dry run -> %s done: %llu entries checked, %llu "
		    "steps a full sync would take, %llu errors; nothing "
		    "changed", fullsync_pair_name(fs), fullsync_dest(fs),
		    (unsigned long long)s->entries_seen,
		    (unsigned long long)s->dry_steps,
		    (unsigned long long)s->errors);
		goto out;
	}
	synclog_format_size(s->bytes_copied, copied, sizeof copied);
	synclog_msg(s->errors ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
	    "%s: full sync -> %s done: %llu entries checked, %llu files "
	    "copied (%s), %llu links, %llu symlinks, %llu dirs created, "
	    "%llu deleted, %llu errors",
	    fullsync_pair_name(fs), fullsync_dest(fs),
	    (unsigned long long)s->entries_seen,
	    (unsigned long long)s->files_copied, copied,
	    (unsigned long long)s->hardlinks,
	    (unsigned long long)s->symlinks,
	    (unsigned long long)s->dirs_created,
	    (unsigned long long)s->deleted, (unsigned long long)s->errors);
	if (s->withheld != 0)
		synclog_event(LOG_LEVEL_ERROR, fullsync_pair_name(fs), "guard",
		    "", fullsync_dest(fs), "max_delete reached: %llu entries "
		    "deleted, %llu deletes withheld (max_delete allows %llu "
		    "in one pass); raise max_delete to let them go",
		    (unsigned long long)s->deleted,
		    (unsigned long long)s->withheld,
		    (unsigned long long)s->delete_budget);
out:
	if (++once->n_finished == once->n_passes)
		event_base_loopexit(once->base, NULL);
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	Once *once = arg;

	(void)what;
	/* A huge copy in flight stops within a step (its temporary is
	 * removed) instead of holding up the exit. */
	copy_abandon();
	synclog_msg(LOG_LEVEL_WARN, "%s received: stopping; copies in "
	    "progress are abandoned, nothing is left half-written",
	    sig == SIGINT ? "SIGINT" : "SIGTERM");
	once->interrupted = true;
	event_base_loopbreak(once->base);
}

static void
print_line(void *arg, const char *line)
{
	fprintf(arg, "%s\n", line);
}

/* --dry-run: every pass's list, in config order; 0 when all are empty. */
static int
print_dry_run(Once *once)
{
	size_t lines = 0;

	for (size_t i = 0; i < once->n_passes; i++)
		lines += itemize_render(&once->items[i], once->pairs[i],
		    fullsync_dest(once->passes[i]),
		    fullsync_stats(once->passes[i]), false, print_line, stdout);
	if (fflush(stdout) != 0) {
		synclog_msg(LOG_LEVEL_ERROR, "dry run: writing the list: %s",
		    strerror(errno));
		return EXIT_RUNTIME;
	}
	synclog_msg(LOG_LEVEL_INFO, "dry run complete in %.2f s: %s; nothing "
	    "was changed", elapsed_s(&once->started), lines == 0 ?
	    "every destination matches its source" :
	    "a full sync would change something (listed on stdout)");
	return lines == 0 ? 0 : EXIT_RUNTIME;
}

/* treesyncd --once: every destination of every pair, in parallel. */
static int
run_once(Config *cfg, bool dry_run)
{
	Once once = { .dry_run = dry_run };
	FullSyncOptions opt = { .preserve_owner = geteuid() == 0,
	    .umask_zero = true, .dry_run = dry_run };
	struct event *sigint = NULL, *sigterm = NULL;
	SyncStats total;
	int r, status = EXIT_RUNTIME;
	size_t n = 0;

	clock_gettime(CLOCK_MONOTONIC, &once.started);
	if ((once.base = event_base_new()) == NULL) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot create the event loop");
		return EXIT_RUNTIME;
	}
	if ((r = pool_new(once.base, cfg->workers, &once.pool)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot start %d workers: %s",
		    cfg->workers, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < cfg->n_syncs; i++)
		n += cfg->syncs[i].n_destinations;
	once.passes = calloc(n, sizeof *once.passes);
	once.items = calloc(n, sizeof *once.items);
	once.pairs = calloc(n, sizeof *once.pairs);
	if (once.passes == NULL || once.items == NULL || once.pairs == NULL)
		goto out;
	synclog_msg(LOG_LEVEL_INFO, "treesyncd %s: %s of %zu sync "
	    "pair%s (%zu destination%s), %d workers, config %s",
	    TREESYNC_VERSION, dry_run ? "dry run (compare only)" :
	    "full sync", cfg->n_syncs, cfg->n_syncs == 1 ? "" : "s", n,
	    n == 1 ? "" : "s", cfg->workers, cfg->path);
	for (size_t i = 0; i < cfg->n_syncs; i++) {
		const SyncPairConfig *p = &cfg->syncs[i];
		for (size_t d = 0; d < p->n_destinations; d++) {
			if (p->dest_remotes[d] != NULL) {
				/* Not a path here: dest/remote.c's, which
				 * only the daemon runs so far. */
				synclog_event(LOG_LEVEL_ERROR, p->name, "full",
				    "", p->destinations[d], "remote "
				    "destinations are synced by the daemon "
				    "only (not by --once yet): skipped");
				once.remote_skipped++;
				continue;
			}
			ItemList *items = &once.items[once.n_passes];

			itemize_init(items, opt.preserve_owner, 0);
			if (dry_run) {
				opt.report = itemize_step;
				opt.report_arg = items;
			}
			once.pairs[once.n_passes] = p;
			r = fullsync_new(once.pool, p, p->destinations[d], "", &opt,
			    on_pass_done, &once, &once.passes[once.n_passes]);
			if (r < 0)
				goto out;
			once.n_passes++;
		}
	}
	sigint = evsignal_new(once.base, SIGINT, on_stop_signal, &once);
	sigterm = evsignal_new(once.base, SIGTERM, on_stop_signal, &once);
	if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) < 0
	    || evsignal_add(sigterm, NULL) < 0)
		goto out;
	if (synclog_is_tty()) {
		struct timeval tv = { 0, 250000 };
		once.progress = event_new(once.base, -1, EV_PERSIST,
		    on_progress, &once);
		if (once.progress != NULL)
			event_add(once.progress, &tv);
	}
	for (size_t i = 0; i < once.n_passes; i++)
		fullsync_start(once.passes[i]);
	if (once.n_passes > 0)
		event_base_dispatch(once.base);
	synclog_set_progress(NULL);

	sum_stats(&once, &total);
	if (once.interrupted) {
		synclog_msg(LOG_LEVEL_WARN, "%s interrupted after %.1f s%s",
		    dry_run ? "dry run" : "full sync", elapsed_s(&once.started),
		    dry_run ? "" : ": destinations are not complete");
	} else if (dry_run) {
		status = print_dry_run(&once);
	} else {
		char copied[32];
		synclog_format_size(total.bytes_copied, copied, sizeof copied);
		synclog_msg(total.errors ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
		    "full sync %s in %.2f s: %llu entries checked, %llu files "
		    "copied (%s), %llu deleted, %llu error%s",
		    total.errors ? "finished with errors" : "complete",
		    elapsed_s(&once.started),
		    (unsigned long long)total.entries_seen,
		    (unsigned long long)total.files_copied, copied,
		    (unsigned long long)total.deleted,
		    (unsigned long long)total.errors,
		    total.errors == 1 ? "" : "s");
		status = total.errors == 0 && once.remote_skipped == 0 ? 0 :
		    EXIT_RUNTIME;
	}
out:
	/* Workers finish what they are doing (a copy in progress is renamed
	 * into place or its temporary removed); queued work is dropped. */
	for (size_t i = 0; i < once.n_passes; i++)
		fullsync_stop(once.passes[i]);
	pool_free(once.pool);
	for (size_t i = 0; i < once.n_passes; i++) {
		fullsync_free(once.passes[i]);
		itemize_free(&once.items[i]);
	}
	free(once.passes);
	free(once.items);
	free(once.pairs);
	if (once.progress != NULL)
		event_free(once.progress);
	if (sigint != NULL)
		event_free(sigint);
	if (sigterm != NULL)
		event_free(sigterm);
	event_base_free(once.base);
	return status;
}

/*
 * Test hook (TREESYNC_TEST_HOOKS=1): TREESYNC_TEST_LOG_BACKLOG=BYTES makes
 * the log's backlog small, so a test can drive it past its bound without
 * megabytes of lines.
 */
static void
set_test_log_limits(void)
{
	const char *hooks = getenv("TREESYNC_TEST_HOOKS");
	const char *backlog = getenv("TREESYNC_TEST_LOG_BACKLOG");

	if (hooks == NULL || strcmp(hooks, "1") != 0 || backlog == NULL)
		return;
	synclog_set_writer_limits(strtoull(backlog, NULL, 10), 0);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "once", no_argument, NULL, 'O' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = CONFIG_DEFAULT_PATH;
	bool once = false, check = false, dry_run = false;
	Config *cfg = NULL;
	char *errors = NULL;
	int c, r, status;

	while ((c = getopt_long(argc, argv, "c:fthV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			break;	/* there is no fork: systemd (Type=notify)
				 * and the terminal both want it so */
		case 'O':
			once = true;
			break;
		case 'n':
			dry_run = true;
			break;
		case 't':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("treesyncd %s\n", TREESYNC_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'treesyncd --help' for more "
			    "information.\n");
			return EXIT_USAGE;
		}
	}
	if (dry_run && !once) {
		fprintf(stderr, "treesyncd: --dry-run needs --once (the daemon "
		    "itself always syncs; treesyncctl diff NAME asks a running "
		    "one)\nTry 'treesyncd --help' for more information.\n");
		return EXIT_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "treesyncd: unexpected argument '%s'\n"
		    "Try 'treesyncd --help' for more information.\n",
		    argv[optind]);
		return EXIT_USAGE;
	}

	r = config_load(path, &cfg, &errors);
	if (r == 0 && check)
		r = config_check_sources(cfg, &errors);
	if (r < 0) {
		fputs(errors != NULL ? errors : "invalid config\n", stderr);
		free(errors);
		config_free(cfg);
		return EXIT_USAGE;
	}
	if (check) {
		printf("%s: configuration OK (%zu sync pair%s)\n", path,
		    cfg->n_syncs, cfg->n_syncs == 1 ? "" : "s");
		config_free(cfg);
		return 0;
	}
	set_test_log_limits();
	if ((r = synclog_open(cfg->log_file, cfg->log_level)) < 0) {
		fprintf(stderr, "treesyncd: cannot open log file '%s': %s\n",
		    cfg->log_file, strerror(-r));
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Modes come from the source, not from our umask; every file and
	 * directory we create gets its mode set explicitly. */
	umask(0);
	fsutil_init_temp_tag();
	if (once) {
		status = run_once(cfg, dry_run);
		config_free(cfg);
	} else {
		status = daemon_run(cfg);	/* takes cfg */
	}
	synclog_close();
	return status;
}
