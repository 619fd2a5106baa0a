/*
 * Unit tests for config: one test per class of problem, each checking the
 * FILE:LINE the operator is sent to and the substance of the message.
 * Every config text is written one setting per line so that the line
 * numbers in the assertions can be counted in the source.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <arpa/inet.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/config.h"

static char tmpdir[PATH_MAX];
static char conf_path[PATH_MAX + 32];

static void
setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/treesync-test-config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof conf_path, "%s/treesync.conf", tmpdir);
}

static int
remove_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
teardown(void)
{
	nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
write_conf(const char *text)
{
	FILE *f = fopen(conf_path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* Loads text expecting success. */
static Config *
load_ok(const char *text)
{
	Config *cfg = NULL;
	char *errors = NULL;
	int r;

	write_conf(text);
	r = config_load(conf_path, &cfg, &errors);
	ck_assert_msg(r == 0, "config_load: %d\n%s", r, errors ? errors : "");
	ck_assert_ptr_null(errors);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* Loads text expecting -EINVAL; returns the error text (caller frees). */
static char *
load_fail(const char *text)
{
	Config *cfg = (Config *)0x1;
	char *errors = NULL;
	int r;

	write_conf(text);
	r = config_load(conf_path, &cfg, &errors);
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_ptr_eq(cfg, (Config *)0x1);
	ck_assert_ptr_nonnull(errors);
	ck_assert(errors[0] != '\0');
	ck_assert(errors[strlen(errors) - 1] == '\n');
	return errors;
}

static size_t
count_lines(const char *text)
{
	size_t n = 0;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/*
 * Asserts that errors holds a line "CONF:LINE: ..." (or "CONF: ..." for
 * line 0) containing every one of the NULL-terminated fragments.
 */
static void
assert_problem(const char *errors, int line, ...)
{
	char prefix[PATH_MAX + 64];
	const char *p = errors;

	if (line > 0)
		snprintf(prefix, sizeof prefix, "%s:%d: ", conf_path, line);
	else
		snprintf(prefix, sizeof prefix, "%s: ", conf_path);
	while (*p != '\0') {
		const char *end = strchr(p, '\n');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *one = strndup(p, len);
		bool all = strncmp(one, prefix, strlen(prefix)) == 0;
		const char *frag;
		va_list ap;

		va_start(ap, line);
		while (all && (frag = va_arg(ap, const char *)) != NULL)
			all = strstr(one, frag) != NULL;
		va_end(ap);
		free(one);
		if (all)
			return;
		p += len + (end != NULL);
	}
	ck_abort_msg("no problem at line %d with the expected text in:\n%s",
	    line, errors);
}

#define ASSERT_PROBLEM(errors, line, ...) \
	assert_problem(errors, line, __VA_ARGS__, (const char *)NULL)

/* A config with one sync whose group lines are given; sync starts line 2. */
#define ONE_SYNC(...) \
	"workers = 4;\n"		/* 1 */ \
	"syncs = (\n"			/* 2 */ \
	"  {\n"				/* 3 */ \
	__VA_ARGS__			/* 4.. */ \
	"  }\n" \
	");\n"

START_TEST(test_valid_spec_example)
{
	const char *text =
	    "# global settings\n"					/* 1 */
	    "workers   = 4;\n"						/* 2 */
	    "delay_ms  = 50;\n"						/* 3 */
	    "log_file  = \"/var/log/treesync/treesync.log\";\n"	/* 4 */
	    "log_level = \"info\";\n"					/* 5 */
	    "control_socket = \"/run/treesync/control.sock\";\n"	/* 6 */
	    "\n"							/* 7 */
	    "syncs = (\n"						/* 8 */
	    "  {\n"							/* 9 */
	    "    name         = \"projects\";\n"			/* 10 */
	    "    source       = \"/srv/projects\";\n"			/* 11 */
	    "    destinations = ( \"/backup/projects\", \"/mnt/mirror/projects\" );\n"
	    "    exclude      = ( \"*.swp\", \"*~\", \".git/\", \"node_modules/\" );\n"
	    "    delete       = true;\n"
	    "    compare      = \"mtime\";\n"
	    "  }\n"
	    ");\n";
	Config *cfg = load_ok(text);
	const SyncPairConfig *p;

	ck_assert_str_eq(cfg->path, conf_path);
	ck_assert_int_eq(cfg->workers, 4);
	ck_assert_int_eq(cfg->delay_ms, 50);
	ck_assert_str_eq(cfg->log_file, "/var/log/treesync/treesync.log");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	ck_assert_str_eq(cfg->control_socket, "/run/treesync/control.sock");
	ck_assert_uint_eq(cfg->n_syncs, 1);
	p = &cfg->syncs[0];
	ck_assert_str_eq(p->name, "projects");
	ck_assert_str_eq(p->source, "/srv/projects");
	ck_assert_uint_eq(p->n_destinations, 2);
	ck_assert_str_eq(p->destinations[0], "/backup/projects");
	ck_assert_str_eq(p->destinations[1], "/mnt/mirror/projects");
	ck_assert_ptr_nonnull(p->exclude);
	ck_assert_uint_eq(exclude_count(p->exclude), 4);
	ck_assert(exclude_match(p->exclude, "a/.main.c.swp", false));
	ck_assert(exclude_match(p->exclude, "a/b~", false));
	ck_assert(exclude_match(p->exclude, "lib/.git", true));
	ck_assert(!exclude_match(p->exclude, "lib/.git", false));
	ck_assert(exclude_match(p->exclude, "web/node_modules", true));
	ck_assert(!exclude_match(p->exclude, "src/main.c", false));
	ck_assert(p->delete);
	ck_assert_int_eq(p->compare, COMPARE_MTIME);
	ck_assert_int_eq(p->line, 9);
	ck_assert_int_eq(p->source_line, 11);
	ck_assert_ptr_eq(config_find_sync(cfg, "projects"), p);
	ck_assert_ptr_null(config_find_sync(cfg, "project"));
	ck_assert_ptr_null(config_find_sync(cfg, NULL));
	config_free(cfg);
}
END_TEST

START_TEST(test_valid_other_values)
{
	static const char format[] =
	    "workers = 256;\n"						/* 1 */
	    "delay_ms = 0;\n"						/* 2 */
	    "log_level = \"debug\";\n"					/* 3 */
	    "control_socket = \"/run//ts/./ctl.sock\";\n"		/* 4 */
	    "syncs = (\n"						/* 5 */
	    "  {\n"							/* 6 */
	    "    name = \"a.b_c-1\";\n"					/* 7 */
	    "    source = \"/srv//a/./\";\n"				/* 8 */
	    "    destinations = [ \"/backup/a/\", \"/mnt/a\" ];\n"	/* 9 */
	    "    exclude = [ ];\n"					/* 10 */
	    "    delete = false;\n"					/* 11 */
	    "    compare = \"hash\";\n"				/* 12 */
	    "  },\n"							/* 13 */
	    "  {\n"							/* 14 */
	    "    name = \"B\";\n"					/* 15 */
	    "    source = \"/x\";\n"					/* 16 */
	    "    destinations = ( %s );\n"				/* 17 */
	    "  }\n"
	    ");\n";
	const SyncPairConfig *p;
	char *text, *errors;
	Config *cfg;

	/* First with no destination in the second sync, then with one. */
	ck_assert_int_ge(asprintf(&text, format, ""), 0);
	errors = load_fail(text);
	free(text);
	ASSERT_PROBLEM(errors, 17, "sync 'B': destinations: must hold at least "
	    "one path");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);

	ck_assert_int_ge(asprintf(&text, format, "\"/y\""), 0);
	cfg = load_ok(text);
	free(text);
	ck_assert_int_eq(cfg->workers, 256);
	ck_assert_int_eq(cfg->delay_ms, 0);
	ck_assert_ptr_null(cfg->log_file);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_DEBUG);
	ck_assert_str_eq(cfg->control_socket, "/run/ts/ctl.sock");
	ck_assert_uint_eq(cfg->n_syncs, 2);
	p = &cfg->syncs[0];
	ck_assert_str_eq(p->name, "a.b_c-1");
	ck_assert_str_eq(p->source, "/srv/a");
	ck_assert_int_eq(p->line, 6);
	ck_assert_int_eq(p->source_line, 8);
	ck_assert_uint_eq(p->n_destinations, 2);
	ck_assert_str_eq(p->destinations[0], "/backup/a");
	ck_assert_str_eq(p->destinations[1], "/mnt/a");
	ck_assert_uint_eq(exclude_count(p->exclude), 0);
	ck_assert(!p->delete);
	ck_assert_int_eq(p->compare, COMPARE_HASH);
	ck_assert_ptr_eq(config_find_sync(cfg, "B"), &cfg->syncs[1]);
	ck_assert_ptr_null(config_find_sync(cfg, "b"));
	ck_assert_str_eq(cfg->syncs[1].source, "/x");
	ck_assert_str_eq(cfg->syncs[1].destinations[0], "/y");
	config_free(cfg);
}
END_TEST

START_TEST(test_defaults)
{
	Config *cfg = load_ok(
	    "syncs = ( { name = \"p\"; source = \"/srv/p\"; "
	    "destinations = ( \"/backup/p\" ); } );\n");
	const SyncPairConfig *p = &cfg->syncs[0];

	ck_assert_int_eq(cfg->workers, CONFIG_DEFAULT_WORKERS);
	ck_assert_int_eq(cfg->workers, 4);
	ck_assert_int_eq(cfg->delay_ms, 50);
	ck_assert_ptr_null(cfg->log_file);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	ck_assert_str_eq(cfg->control_socket, "/run/treesync/control.sock");
	ck_assert_ptr_nonnull(p->exclude);
	ck_assert_uint_eq(exclude_count(p->exclude), 0);
	ck_assert(p->delete);
	ck_assert_int_eq(p->compare, COMPARE_MTIME);
	ck_assert_int_eq(p->line, 1);
	ck_assert_int_eq(p->source_line, 1);
	config_free(cfg);
}
END_TEST

START_TEST(test_syntax_error)
{
	char *errors = load_fail(
	    "workers = 4;\n"
	    "delay_ms = 50\n"
	    "log_level = ;\n");

	ASSERT_PROBLEM(errors, 3, "syntax error: ");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);
}
END_TEST

START_TEST(test_unknown_top_level_key)
{
	char *errors = load_fail(
	    "wrokers = 4;\n"						/* 1 */
	    "colour = \"blue\";\n"					/* 2 */
	    "source = \"/srv\";\n"					/* 3 */
	    "syncs = ( { name = \"p\"; source = \"/srv/p\"; "
	    "destinations = ( \"/b\" ); } );\n");

	ASSERT_PROBLEM(errors, 1, "unknown key 'wrokers'",
	    "did you mean 'workers'?");
	ASSERT_PROBLEM(errors, 2, "unknown key 'colour'");
	ck_assert_ptr_null(strstr(errors, "did you mean 'log_level'"));
	ASSERT_PROBLEM(errors, 3, "unknown key 'source'", "sync group");
	ck_assert_uint_eq(count_lines(errors), 3);
	free(errors);
}
END_TEST

START_TEST(test_unknown_sync_key)
{
	char *errors = load_fail(ONE_SYNC(
	    "    name = \"projects\";\n"				/* 4 */
	    "    source = \"/srv/projects\";\n"			/* 5 */
	    "    destination = ( \"/backup/projects\" );\n"		/* 6 */
	    "    workers = 2;\n"					/* 7 */
	    "    colour = 1;\n"));					/* 8 */

	ASSERT_PROBLEM(errors, 6,
	    "unknown key 'destination' in sync 'projects' "
	    "(did you mean 'destinations'?)");
	ASSERT_PROBLEM(errors, 7, "unknown key 'workers' in sync 'projects'",
	    "global setting");
	ASSERT_PROBLEM(errors, 8, "unknown key 'colour' in sync 'projects'");
	ASSERT_PROBLEM(errors, 3, "sync 'projects'",
	    "missing required key 'destinations'");
	ck_assert_uint_eq(count_lines(errors), 4);
	free(errors);
}
END_TEST

/* `watch`: the three modes, auto by default, anything else FILE:LINE. */
START_TEST(test_watch_mode)
{
	static const char *const words[] = { "auto", "inotify", "fanotify" };
	static const char pair[] = "syncs = ( { name = \"p\"; source = "
	    "\"/srv/p\"; destinations = ( \"/backup/p\" ); } );\n";
	char *text, *errors;
	Config *cfg;

	cfg = load_ok(pair);
	ck_assert_int_eq(cfg->watch, WATCH_AUTO);
	config_free(cfg);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_ge(asprintf(&text, "watch = \"%s\";\n%s",
		    words[i], pair), 0);
		cfg = load_ok(text);
		free(text);
		ck_assert_int_eq(cfg->watch, i);
		ck_assert_str_eq(watcher_mode_name(cfg->watch), words[i]);
		config_free(cfg);
	}
	ck_assert_int_ge(asprintf(&text, "delay_ms = 5;\nwatch = \"dnotify\";"
	    "\n%s", pair), 0);
	errors = load_fail(text);
	free(text);
	ASSERT_PROBLEM(errors, 2, "watch: must be one of \"auto\", "
	    "\"inotify\", \"fanotify\"", "got string \"dnotify\"");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);
	ck_assert_int_ge(asprintf(&text, "watch = 1;\n%s", pair), 0);
	errors = load_fail(text);
	free(text);
	ASSERT_PROBLEM(errors, 1, "watch: must be one of", "got integer 1");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);
}
END_TEST

START_TEST(test_wrong_types)
{
	char *errors = load_fail(
	    "workers = \"4\";\n"					/* 1 */
	    "delay_ms = 1.5;\n"						/* 2 */
	    "log_file = 5;\n"						/* 3 */
	    "log_level = 3;\n"						/* 4 */
	    "control_socket = true;\n"					/* 5 */
	    "syncs = (\n"						/* 6 */
	    "  {\n"							/* 7 */
	    "    name = 5;\n"						/* 8 */
	    "    source = ( \"/srv/p\" );\n"				/* 9 */
	    "    destinations = ( \"/b\",\n"				/* 10 */
	    "        7 );\n"						/* 11 */
	    "    exclude = ( \"*.o\", 1 );\n"				/* 12 */
	    "    delete = 1;\n"						/* 13 */
	    "    compare = 2;\n"					/* 14 */
	    "  },\n"							/* 15 */
	    "  {\n"							/* 16 */
	    "    name = \"q\";\n"					/* 17 */
	    "    source = \"/srv/q\";\n"				/* 18 */
	    "    destinations = \"/backup/q\";\n"			/* 19 */
	    "    exclude = \"*.o\";\n"					/* 20 */
	    "  },\n"							/* 21 */
	    "  \"r\"\n"							/* 22 */
	    ");\n");

	ASSERT_PROBLEM(errors, 1, "workers: must be an integer from 1 to 256",
	    "got string \"4\"");
	ASSERT_PROBLEM(errors, 2, "delay_ms: must be an integer from 0 to 60000",
	    "got float 1.5");
	ASSERT_PROBLEM(errors, 3, "log_file: must be a string",
	    "absolute path", "got integer 5");
	ASSERT_PROBLEM(errors, 4, "log_level: must be one of \"error\"",
	    "got integer 3");
	ASSERT_PROBLEM(errors, 5, "control_socket: must be a string",
	    "got boolean true");
	ASSERT_PROBLEM(errors, 8, "sync #1: name: must be a string",
	    "got integer 5");
	ASSERT_PROBLEM(errors, 9, "sync #1: source: must be a string",
	    "got a list");
	ASSERT_PROBLEM(errors, 11, "sync #1: destinations: entry 2: must be a "
	    "string", "got integer 7");
	ASSERT_PROBLEM(errors, 12, "sync #1: exclude: entry 2: must be a string",
	    "got integer 1");
	ASSERT_PROBLEM(errors, 13, "sync #1: delete: must be true or false",
	    "got integer 1");
	ASSERT_PROBLEM(errors, 14, "sync #1: compare: must be \"mtime\" or "
	    "\"hash\"", "got integer 2");
	ASSERT_PROBLEM(errors, 19, "sync 'q': destinations: must be a list",
	    "got string \"/backup/q\"");
	ASSERT_PROBLEM(errors, 20, "sync 'q': exclude: must be a list",
	    "got string \"*.o\"");
	ASSERT_PROBLEM(errors, 22, "syncs: entry 3: must be a group",
	    "got string \"r\"");
	ck_assert_uint_eq(count_lines(errors), 14);
	free(errors);

	errors = load_fail("syncs = 5;\n");
	ASSERT_PROBLEM(errors, 1, "syncs: must be a list of sync groups",
	    "got integer 5");
	free(errors);
}
END_TEST

START_TEST(test_out_of_range)
{
	static const struct {
		const char *setting;
		const char *message;
	} cases[] = {
		{ "workers = 0;", "workers: must be an integer from 1 to 256, got 0" },
		{ "workers = 257;", "workers: must be an integer from 1 to 256, got 257" },
		{ "workers = -3;", "workers: must be an integer from 1 to 256, got -3" },
		{ "delay_ms = -1;", "delay_ms: must be an integer from 0 to 60000, got -1" },
		{ "delay_ms = 60001;", "delay_ms: must be an integer from 0 to 60000, got 60001" },
		{ "delay_ms = 100000L;", "delay_ms: must be an integer from 0 to 60000, got 100000" },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text, *errors;

		ck_assert_int_ge(asprintf(&text, "log_level = \"warn\";\n%s\n"
		    "syncs = ( { name = \"p\"; source = \"/s\"; "
		    "destinations = ( \"/d\" ); } );\n", cases[i].setting), 0);
		errors = load_fail(text);
		ASSERT_PROBLEM(errors, 2, cases[i].message);
		ck_assert_uint_eq(count_lines(errors), 1);
		free(errors);
		free(text);
	}
}
END_TEST

/*
 * Integers as written (issue 13): libconfig 1.5 keeps a decimal beyond 32
 * bits wrapped and one beyond 64 bits saturated; the message must show
 * the number in the file, and a wrapped number must never pass as the
 * value it wrapped to (4294967346 would be a delay of 50 ms).
 */
START_TEST(test_integers_as_written)
{
	static const struct {
		const char *setting;
		const char *message;
		const char *never;	/* what a wrapped value would show */
	} cases[] = {
		{ "workers = 99999999999999999999;", "workers: must be an "
		    "integer from 1 to 256, got 99999999999999999999 (out of "
		    "range)", "got -1" },
		{ "delay_ms = 2147483648;", "delay_ms: must be an integer from "
		    "0 to 60000, got 2147483648 (out of range)",
		    "-2147483648" },
		{ "delay_ms = 4294967346;", "delay_ms: must be an integer from "
		    "0 to 60000, got 4294967346", "got 50" },
		{ "workers = -4294967295;", "workers: must be an integer from "
		    "1 to 256, got -4294967295", "got 1\n" },
		{ "workers = 0x100000004;", "workers: must be an integer from "
		    "1 to 256, got 0x100000004", "got 4\n" },
		{ "max_delete = 99999999999999999999;", "max_delete: a count "
		    "must be from 0 to 9223372036854775807, got "
		    "99999999999999999999 (out of range)", "got -1" },
		{ "max_delete = 99999999999999999999L;", "max_delete: a count "
		    "must be from 0 to", "9223372036854775807 entries" },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text, *errors;

		ck_assert_int_ge(asprintf(&text, "log_level = \"warn\";\n%s\n"
		    "syncs = ( { name = \"p\"; source = \"/s\"; "
		    "destinations = ( \"/d\" ); } );\n", cases[i].setting), 0);
		errors = load_fail(text);
		ASSERT_PROBLEM(errors, 2, cases[i].message);
		ck_assert_msg(strstr(errors, cases[i].never) == NULL, "%s",
		    errors);
		ck_assert_uint_eq(count_lines(errors), 1);
		free(errors);
		free(text);
	}
}
END_TEST

/* Numbers that fit are read as before, 64-bit ones and hex included. */
START_TEST(test_integers_that_fit)
{
	Config *cfg = load_ok(
	    "workers = 0x10;\n"
	    "delay_ms = 60000L;\n"
	    "max_delete = 5000000000;\n"
	    "syncs = ( { name = \"p\"; source = \"/s\"; "
	    "destinations = ( \"/d\" ); max_delete = 7; } );\n");

	ck_assert_int_eq(cfg->workers, 16);
	ck_assert_int_eq(cfg->delay_ms, 60000);
	ck_assert_uint_eq(cfg->max_delete.value, 5000000000ULL);
	ck_assert_uint_eq(cfg->syncs[0].max_delete.value, 7);
	config_free(cfg);
}
END_TEST

START_TEST(test_missing_include_is_named)
{
	char *text, *errors;

	ck_assert_int_ge(asprintf(&text, "workers = 4;\n"
	    "@include \"%s/extra.conf\"\n", tmpdir), 0);
	errors = load_fail(text);
	free(text);
	ck_assert_msg(strstr(errors, "/extra.conf': No such file or "
	    "directory\n") != NULL, "%s", errors);
	ASSERT_PROBLEM(errors, 2, "cannot open the include file '", tmpdir);
	free(errors);
}
END_TEST

START_TEST(test_unquoted_string_gets_a_hint)
{
	char *errors = load_fail(
	    "workers = 4;\n"
	    "log_level = info;\n");

	ASSERT_PROBLEM(errors, 2, "log_level: a string must be in double "
	    "quotes: log_level = \"info\";");
	ck_assert_msg(strstr(errors, "syntax error: syntax error") == NULL,
	    "%s", errors);
	free(errors);
	errors = load_fail("workers = 4;\ndelete = yes;\n");
	ASSERT_PROBLEM(errors, 2, "delete = \"yes\";");
	free(errors);
}
END_TEST

/* -t: what the daemon would fail on at start, as FILE:LINE. */
START_TEST(test_check_parents_exist)
{
	char *text, *errors = NULL, dir[PATH_MAX + 16];
	Config *cfg;

	snprintf(dir, sizeof dir, "%s/src", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_ge(asprintf(&text,
	    "log_file = \"%s/no-such-dir/treesync.log\";\n"		/* 1 */
	    "syncs = ( {\n"						/* 2 */
	    "  name = \"p\";\n"						/* 3 */
	    "  source = \"%s\";\n"					/* 4 */
	    "  destinations = (\n"					/* 5 */
	    "    \"%s/dst-made-at-start\",\n"				/* 6 */
	    "    \"%s/missing/dst\"\n"					/* 7 */
	    "  );\n"
	    "} );\n", tmpdir, dir, tmpdir, tmpdir), 0);
	cfg = load_ok(text);
	free(text);
	ck_assert_int_eq(config_check_sources(cfg, &errors), -EINVAL);
	ASSERT_PROBLEM(errors, 1, "log_file '", "/no-such-dir/treesync.log': "
	    "its directory '", "/no-such-dir': No such file or directory");
	ASSERT_PROBLEM(errors, 7, "sync 'p': destination '", "/missing/dst': "
	    "its parent directory '", "/missing': No such file or directory");
	ck_assert_uint_eq(count_lines(errors), 2);
	free(errors);
	config_free(cfg);
}
END_TEST

START_TEST(test_max_delete)
{
	Config *cfg = load_ok(
	    "max_delete = \"10%\";\n"
	    "syncs = (\n"
	    "  { name = \"a\"; source = \"/s1\"; destinations = ( \"/d1\" ); },\n"
	    "  { name = \"b\"; source = \"/s2\"; destinations = ( \"/d2\" );\n"
	    "    max_delete = 1000; },\n"
	    "  { name = \"c\"; source = \"/s3\"; destinations = ( \"/d3\" );\n"
	    "    max_delete = \"0%\"; }\n"
	    ");\n");

	ck_assert_int_eq(cfg->max_delete.kind, MAX_DELETE_PERCENT);
	ck_assert_uint_eq(cfg->max_delete.value, 10);
	/* A pair without its own takes the global one. */
	ck_assert_int_eq(cfg->syncs[0].max_delete.kind, MAX_DELETE_PERCENT);
	ck_assert_uint_eq(cfg->syncs[0].max_delete.value, 10);
	ck_assert_int_eq(cfg->syncs[1].max_delete.kind, MAX_DELETE_COUNT);
	ck_assert_uint_eq(cfg->syncs[1].max_delete.value, 1000);
	ck_assert_int_eq(cfg->syncs[2].max_delete.kind, MAX_DELETE_PERCENT);
	ck_assert_uint_eq(cfg->syncs[2].max_delete.value, 0);
	config_free(cfg);

	cfg = load_ok("syncs = ( { name = \"a\"; source = \"/s\"; "
	    "destinations = ( \"/d\" ); } );\n");
	ck_assert_int_eq(cfg->syncs[0].max_delete.kind, MAX_DELETE_NONE);
	config_free(cfg);
}
END_TEST

START_TEST(test_max_delete_invalid)
{
	static const struct {
		const char *value;
		const char *message;
	} cases[] = {
		{ "-1", "max_delete: must be a count (max_delete = 1000;) or a "
		    "percentage of the destination (max_delete = \"10%\";), "
		    "got -1" },
		{ "\"101%\"", "max_delete: a percentage must be from 0% to "
		    "100%, got \"101%\"" },
		{ "\"ten\"", "got string \"ten\"" },
		{ "\"10\"", "got string \"10\"" },
		{ "\"10 %\"", "got string \"10 %\"" },
		{ "\"-5%\"", "got string \"-5%\"" },
		{ "1.5", "max_delete: must be a count" },
		{ "true", "max_delete: must be a count" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text, *errors;

		/* In a sync group (line 4) and at the top (line 1). */
		ck_assert_int_ge(asprintf(&text, ONE_SYNC(
		    "    max_delete = %s;\n"
		    "    name = \"p\"; source = \"/s\"; destinations = ( \"/d\" );\n"),
		    cases[i].value), 0);
		errors = load_fail(text);
		ASSERT_PROBLEM(errors, 4, "sync 'p': ", cases[i].message);
		ck_assert_uint_eq(count_lines(errors), 1);
		free(errors);
		free(text);
		ck_assert_int_ge(asprintf(&text, "max_delete = %s;\n"
		    "syncs = ( { name = \"p\"; source = \"/s\"; "
		    "destinations = ( \"/d\" ); } );\n", cases[i].value), 0);
		errors = load_fail(text);
		ASSERT_PROBLEM(errors, 1, cases[i].message);
		ck_assert_uint_eq(count_lines(errors), 1);
		free(errors);
		free(text);
	}
}
END_TEST

START_TEST(test_relative_paths)
{
	char *errors = load_fail(
	    "log_file = \"log/treesync.log\";\n"			/* 1 */
	    "control_socket = \"ctl.sock\";\n"				/* 2 */
	    "syncs = (\n"						/* 3 */
	    "  {\n"							/* 4 */
	    "    name = \"p\";\n"					/* 5 */
	    "    source = \"srv/projects\";\n"				/* 6 */
	    "    destinations = ( \"/backup/p\",\n"			/* 7 */
	    "      \"backup\",\n"					/* 8 */
	    "      \"\" );\n"						/* 9 */
	    "  }\n"
	    ");\n");

	ASSERT_PROBLEM(errors, 1, "log_file: must be an absolute path",
	    "\"log/treesync.log\"");
	ASSERT_PROBLEM(errors, 2, "control_socket: must be an absolute path",
	    "\"ctl.sock\"");
	ASSERT_PROBLEM(errors, 6, "sync 'p': source: must be an absolute path",
	    "\"srv/projects\"");
	ASSERT_PROBLEM(errors, 8, "sync 'p': destinations: entry 2: must be an "
	    "absolute path", "\"backup\"");
	ASSERT_PROBLEM(errors, 9, "sync 'p': destinations: entry 3: must be an "
	    "absolute path", "got string \"\"");
	ck_assert_uint_eq(count_lines(errors), 5);
	free(errors);
}
END_TEST

START_TEST(test_dotdot_in_path)
{
	char *errors = load_fail(
	    "log_file = \"/var/log/../tmp/t.log\";\n"			/* 1 */
	    "syncs = (\n"						/* 2 */
	    "  {\n"							/* 3 */
	    "    name = \"p\";\n"					/* 4 */
	    "    source = \"/srv/../etc\";\n"				/* 5 */
	    "    destinations = ( \"/backup/p/..\" );\n"		/* 6 */
	    "  }\n"
	    ");\n");

	ASSERT_PROBLEM(errors, 1, "log_file: must not contain a '..'",
	    "symlinks", "\"/var/log/../tmp/t.log\"");
	ASSERT_PROBLEM(errors, 5, "sync 'p': source: must not contain a '..'",
	    "\"/srv/../etc\"");
	ASSERT_PROBLEM(errors, 6, "sync 'p': destinations: entry 1: must not "
	    "contain a '..'", "\"/backup/p/..\"");
	ck_assert_uint_eq(count_lines(errors), 3);
	free(errors);
}
END_TEST

START_TEST(test_missing_required)
{
	char *errors;

	errors = load_fail("workers = 2;\n");
	ASSERT_PROBLEM(errors, 0, "missing required key 'syncs'");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);

	errors = load_fail(
	    "syncs = (\n"						/* 1 */
	    "  {\n"							/* 2 */
	    "    source = \"/srv/p\";\n"				/* 3 */
	    "    destinations = ( \"/b/p\" );\n"			/* 4 */
	    "  },\n"							/* 5 */
	    "  {\n"							/* 6 */
	    "    name = \"q\";\n"					/* 7 */
	    "    destinations = ( \"/b/q\" );\n"			/* 8 */
	    "  },\n"							/* 9 */
	    "  {\n"							/* 10 */
	    "    name = \"r\";\n"					/* 11 */
	    "    source = \"/srv/r\";\n"				/* 12 */
	    "  }\n"							/* 13 */
	    ");\n");
	ASSERT_PROBLEM(errors, 2, "sync #1: missing required key 'name'");
	ASSERT_PROBLEM(errors, 6, "sync 'q': missing required key 'source'");
	ASSERT_PROBLEM(errors, 10, "sync 'r': missing required key "
	    "'destinations'");
	ck_assert_uint_eq(count_lines(errors), 3);
	free(errors);
}
END_TEST

START_TEST(test_empty_lists)
{
	char *errors;

	errors = load_fail(ONE_SYNC(
	    "    name = \"p\";\n"					/* 4 */
	    "    source = \"/srv/p\";\n"				/* 5 */
	    "    destinations = ( );\n"));				/* 6 */
	ASSERT_PROBLEM(errors, 6, "sync 'p': destinations: must hold at least "
	    "one path");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);
}
END_TEST

/* No sync yet is a valid config: the daemon idles until a reload. */
START_TEST(test_no_syncs)
{
	Config *cfg = load_ok("workers = 1;\nsyncs = ( );\n");
	char *errors;

	ck_assert_uint_eq(cfg->n_syncs, 0);
	ck_assert_ptr_null(config_find_sync(cfg, "p"));
	config_free(cfg);
	/* Leaving the key out is still a mistake. */
	errors = load_fail("workers = 1;\n");
	ASSERT_PROBLEM(errors, 0, "missing required key 'syncs'");
	free(errors);
}
END_TEST

START_TEST(test_metrics_listen)
{
	static const char *const bad[] = {
		"\"localhost:9851\"", "\"127.0.0.1\"", "\"127.0.0.1:0\"",
		"\"127.0.0.1:65536\"", "\"127.0.0.1:-1\"", "\"127.0.0.1:\"",
		"\":9851\"", "\"::1:9851\"", "\"[::1]9851\"", "\"[::1:9851\"",
		"\"[127.0.0.1]:9851\"", "\"127.0.0.1:98510\"",
		"\"127.0.0.1:9851 \"", "\"300.0.0.1:9851\"", "9851", "true",
	};
	const struct sockaddr_in *v4;
	const struct sockaddr_in6 *v6;
	Config *cfg;
	char *errors, *text;

	cfg = load_ok("syncs = ( );\n");
	ck_assert_ptr_null(cfg->metrics_listen);	/* off by default */
	config_free(cfg);
	cfg = load_ok("metrics_listen = \"127.0.0.1:9851\";\nsyncs = ( );\n");
	ck_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9851");
	v4 = (const struct sockaddr_in *)&cfg->metrics_addr;
	ck_assert_int_eq(v4->sin_family, AF_INET);
	ck_assert_int_eq(ntohs(v4->sin_port), 9851);
	ck_assert_uint_eq(ntohl(v4->sin_addr.s_addr), 0x7f000001);
	ck_assert_uint_eq(cfg->metrics_addrlen, sizeof *v4);
	config_free(cfg);
	cfg = load_ok("metrics_listen = \"[::1]:65535\";\nsyncs = ( );\n");
	v6 = (const struct sockaddr_in6 *)&cfg->metrics_addr;
	ck_assert_int_eq(v6->sin6_family, AF_INET6);
	ck_assert_int_eq(ntohs(v6->sin6_port), 65535);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr));
	config_free(cfg);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_ge(asprintf(&text, "workers = 2;\n"
		    "metrics_listen = %s;\nsyncs = ( );\n", bad[i]), 0);
		errors = load_fail(text);
		ASSERT_PROBLEM(errors, 2, "metrics_listen: must be \"ADDR:PORT\"",
		    "got ");
		ck_assert_uint_eq(count_lines(errors), 1);
		free(errors);
		free(text);
	}
}
END_TEST

START_TEST(test_control_socket_group)
{
	struct group *g = getgrgid(getegid());
	Config *cfg;
	char *errors, *text;

	ck_assert_ptr_nonnull(g);
	cfg = load_ok("syncs = ( );\n");
	ck_assert_ptr_null(cfg->control_socket_group);
	config_free(cfg);
	ck_assert_int_ge(asprintf(&text, "control_socket_group = \"%s\";\n"
	    "syncs = ( );\n", g->gr_name), 0);
	cfg = load_ok(text);
	free(text);
	ck_assert_str_eq(cfg->control_socket_group, g->gr_name);
	ck_assert_uint_eq(cfg->control_socket_gid, getegid());
	config_free(cfg);
	errors = load_fail("workers = 2;\n"
	    "control_socket_group = \"treesync-no-such-group-xq\";\n"
	    "syncs = ( );\n");
	ASSERT_PROBLEM(errors, 2, "control_socket_group: there is no group "
	    "\"treesync-no-such-group-xq\"", "groupadd");
	free(errors);
	errors = load_fail("workers = 2;\ncontrol_socket_group = 0;\n"
	    "syncs = ( );\n");
	ASSERT_PROBLEM(errors, 2, "control_socket_group: must be the name of "
	    "a group", "got integer 0");
	free(errors);
}
END_TEST

START_TEST(test_duplicate_name)
{
	char *errors = load_fail(
	    "syncs = (\n"						/* 1 */
	    "  {\n"							/* 2 */
	    "    name = \"p\";\n"					/* 3 */
	    "    source = \"/srv/p\";\n"				/* 4 */
	    "    destinations = ( \"/b/p\" );\n"			/* 5 */
	    "  },\n"							/* 6 */
	    "  {\n"							/* 7 */
	    "    name = \"p\";\n"					/* 8 */
	    "    source = \"/srv/q\";\n"				/* 9 */
	    "    destinations = ( \"/b/q\" );\n"			/* 10 */
	    "  }\n"
	    ");\n");

	ASSERT_PROBLEM(errors, 8, "'p' is already the name of the sync at "
	    "line 2", "unique");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);
}
END_TEST

START_TEST(test_bad_name)
{
	static const struct {
		const char *name;
		const char *message;
	} cases[] = {
		{ "my projects", "may hold only letters, digits, '.', '_' and '-'" },
		{ "a/b", "may hold only letters" },
		{ "caf\xc3\xa9", "may hold only letters" },
		{ "", "must not be empty" },
		{ "-rf", "must not start with '-'" },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text, *errors;

		ck_assert_int_ge(asprintf(&text, ONE_SYNC(
		    "    name = \"%s\";\n"				/* 4 */
		    "    source = \"/srv/p\";\n"
		    "    destinations = ( \"/b/p\" );\n"), cases[i].name), 0);
		errors = load_fail(text);
		ASSERT_PROBLEM(errors, 4, "sync #1: name: ", cases[i].message);
		ck_assert_uint_eq(count_lines(errors), 1);
		free(errors);
		free(text);
	}
}
END_TEST

START_TEST(test_destination_inside_source)
{
	char *errors = load_fail(
	    "syncs = (\n"						/* 1 */
	    "  {\n"							/* 2 */
	    "    name = \"p\";\n"					/* 3 */
	    "    source = \"/srv/p\";\n"				/* 4 */
	    "    destinations = ( \"/backup/p\",\n"			/* 5 */
	    "      \"/srv/p/backup\" );\n"				/* 6 */
	    "  },\n"							/* 7 */
	    "  {\n"							/* 8 */
	    "    name = \"q\";\n"					/* 9 */
	    "    source = \"/srv/q\";\n"				/* 10 */
	    "    destinations = ( \"/srv//q/\" );\n"			/* 11 */
	    "  }\n"
	    ");\n");

	ASSERT_PROBLEM(errors, 6, "sync 'p': destination '/srv/p/backup' is "
	    "inside its source '/srv/p'");
	ASSERT_PROBLEM(errors, 11, "sync 'q': destination '/srv/q' is the same "
	    "directory as its source '/srv/q'");
	ck_assert_uint_eq(count_lines(errors), 2);
	free(errors);
}
END_TEST

START_TEST(test_source_inside_destination)
{
	char *errors = load_fail(ONE_SYNC(
	    "    name = \"p\";\n"					/* 4 */
	    "    source = \"/backup/p/src\";\n"				/* 5 */
	    "    destinations = ( \"/mnt/p\",\n"			/* 6 */
	    "      \"/backup/p\" );\n"));				/* 7 */

	ASSERT_PROBLEM(errors, 7, "sync 'p': source '/backup/p/src' is inside "
	    "its destination '/backup/p'");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);

	/* The root contains everything. */
	errors = load_fail(ONE_SYNC(
	    "    name = \"p\";\n"
	    "    source = \"/srv/p\";\n"
	    "    destinations = ( \"/\" );\n"));
	ASSERT_PROBLEM(errors, 6, "source '/srv/p' is inside its destination "
	    "'/'");
	free(errors);
}
END_TEST

START_TEST(test_same_destination_twice)
{
	char *errors = load_fail(ONE_SYNC(
	    "    name = \"p\";\n"					/* 4 */
	    "    source = \"/srv/p\";\n"				/* 5 */
	    "    destinations = ( \"/backup/p\",\n"			/* 6 */
	    "      \"/mnt/p\",\n"					/* 7 */
	    "      \"/backup//p/\",\n"					/* 8 */
	    "      \"/mnt/p/inner\" );\n"));				/* 9 */

	ASSERT_PROBLEM(errors, 8, "sync 'p': destination '/backup/p' is listed "
	    "twice (also at line 6)");
	ASSERT_PROBLEM(errors, 9, "sync 'p': destination '/mnt/p/inner' is "
	    "inside destination '/mnt/p' of the same sync (line 7)");
	ck_assert_uint_eq(count_lines(errors), 2);
	free(errors);
}
END_TEST

START_TEST(test_two_syncs_same_destination)
{
	char *errors = load_fail(
	    "syncs = (\n"						/* 1 */
	    "  {\n"							/* 2 */
	    "    name = \"a\";\n"					/* 3 */
	    "    source = \"/srv/a\";\n"				/* 4 */
	    "    destinations = ( \"/backup/shared\" );\n"		/* 5 */
	    "  },\n"							/* 6 */
	    "  {\n"							/* 7 */
	    "    name = \"b\";\n"					/* 8 */
	    "    source = \"/srv/b\";\n"				/* 9 */
	    "    destinations = ( \"/mnt/b\",\n"			/* 10 */
	    "      \"/backup/shared/\"\n"				/* 11 */
	    "    );\n"							/* 12 */
	    "  }\n"
	    ");\n");

	/* libconfig itself would say 12, the line of the ')'. */
	ASSERT_PROBLEM(errors, 11, "sync 'b': destination '/backup/shared' is "
	    "also written by sync 'a' (line 5)");
	ck_assert_uint_eq(count_lines(errors), 1);
	free(errors);
}
END_TEST

START_TEST(test_nested_destinations_across_syncs)
{
	char *errors = load_fail(
	    "syncs = (\n"						/* 1 */
	    "  {\n"							/* 2 */
	    "    name = \"a\";\n"					/* 3 */
	    "    source = \"/srv/a\";\n"				/* 4 */
	    "    destinations = ( \"/backup\" );\n"			/* 5 */
	    "  },\n"							/* 6 */
	    "  {\n"							/* 7 */
	    "    name = \"b\";\n"					/* 8 */
	    "    source = \"/srv/b\";\n"				/* 9 */
	    "    destinations = ( \"/backup/b\" );\n"			/* 10 */
	    "  },\n"							/* 11 */
	    "  {\n"							/* 12 */
	    "    name = \"c\";\n"					/* 13 */
	    "    source = \"/srv/c\";\n"				/* 14 */
	    "    destinations = ( \"/mnt/c/deep\" );\n"		/* 15 */
	    "  },\n"							/* 16 */
	    "  {\n"							/* 17 */
	    "    name = \"d\";\n"					/* 18 */
	    "    source = \"/srv/d\";\n"				/* 19 */
	    "    destinations = ( \"/mnt/c\" );\n"			/* 20 */
	    "  }\n"
	    ");\n");

	ASSERT_PROBLEM(errors, 10, "sync 'b': destination '/backup/b' is inside "
	    "destination '/backup' of sync 'a' (line 5)");
	ASSERT_PROBLEM(errors, 20, "sync 'd': destination '/mnt/c' contains "
	    "destination '/mnt/c/deep' of sync 'c' (line 15)");
	ck_assert_uint_eq(count_lines(errors), 2);
	free(errors);
}
END_TEST

START_TEST(test_component_boundaries)
{
	Config *cfg = load_ok(
	    "syncs = (\n"
	    "  { name = \"a\"; source = \"/a/b\"; destinations = ( \"/a/bc\", \"/a/b-\" ); },\n"
	    "  { name = \"b\"; source = \"/a/bcd\"; destinations = ( \"/a/bc.d\", \"/x/y\" ); },\n"
	    "  { name = \"c\"; source = \"/x/yz\"; destinations = ( \"/x/yy\", \"/x/y.z\" ); }\n"
	    ");\n");

	ck_assert_uint_eq(cfg->n_syncs, 3);
	config_free(cfg);
}
END_TEST

START_TEST(test_symlinked_alias)
{
	char real[PATH_MAX + 16], link_[PATH_MAX + 16], *text, *errors;

	snprintf(real, sizeof real, "%s/real", tmpdir);
	snprintf(link_, sizeof link_, "%s/alias", tmpdir);
	ck_assert_int_eq(mkdir(real, 0755), 0);
	ck_assert_int_eq(symlink("real", link_), 0);
	ck_assert_int_ge(asprintf(&text,
	    "syncs = (\n"						/* 1 */
	    "  {\n"							/* 2 */
	    "    name = \"p\";\n"					/* 3 */
	    "    source = \"%s\";\n"					/* 4 */
	    "    destinations = ( \"%s/not-yet/backup\" );\n"		/* 5 */
	    "  },\n"							/* 6 */
	    "  {\n"							/* 7 */
	    "    name = \"q\";\n"					/* 8 */
	    "    source = \"/srv/q\";\n"				/* 9 */
	    "    destinations = ( \"%s/../elsewhere\",\n"		/* 10 */
	    "      \"%s\" );\n"						/* 11 */
	    "  }\n"
	    ");\n", real, link_, tmpdir, real), 0);
	/* Line 10 only checks that '..' stays refused. */
	errors = load_fail(text);
	ASSERT_PROBLEM(errors, 5, "sync 'p': destination", "/alias/not-yet/"
	    "backup' is inside its source", "after resolving symlinks");
	ASSERT_PROBLEM(errors, 10, "must not contain a '..'");
	ASSERT_PROBLEM(errors, 11, "sync 'q': destination", "/real' contains "
	    "destination", "of sync 'p' (line 5)", "after resolving symlinks");
	ck_assert_uint_eq(count_lines(errors), 3);
	free(errors);
	free(text);
}
END_TEST

START_TEST(test_multiple_errors_together)
{
	char *errors = load_fail(
	    "workers = 0;\n"						/* 1 */
	    "log_level = \"loud\";\n"					/* 2 */
	    "syncs = (\n"						/* 3 */
	    "  {\n"							/* 4 */
	    "    name = \"p\";\n"					/* 5 */
	    "    source = \"/srv/p\";\n"				/* 6 */
	    "    destinations = ( \"/srv/p/b\" );\n"			/* 7 */
	    "    delete = \"yes\";\n"					/* 8 */
	    "    exclude = ( \"*.o\", \"/\" );\n"			/* 9 */
	    "  }\n"
	    ");\n"
	    "delay_ms = 70000;\n");					/* 12 */
	const char *l1, *l2, *l7, *l12;
	char at[PATH_MAX + 64];

	ASSERT_PROBLEM(errors, 1, "workers: must be an integer from 1 to 256, "
	    "got 0");
	ASSERT_PROBLEM(errors, 2, "log_level");
	ASSERT_PROBLEM(errors, 7, "inside its source");
	ASSERT_PROBLEM(errors, 8, "delete: must be true or false");
	ASSERT_PROBLEM(errors, 9, "sync 'p': exclude: entry 2", "\"/\"");
	ASSERT_PROBLEM(errors, 12, "delay_ms");
	ck_assert_uint_eq(count_lines(errors), 6);
	/* In file order, whichever pass found them. */
	snprintf(at, sizeof at, "%s:1:", conf_path);
	l1 = strstr(errors, at);
	snprintf(at, sizeof at, "%s:2:", conf_path);
	l2 = strstr(errors, at);
	snprintf(at, sizeof at, "%s:7:", conf_path);
	l7 = strstr(errors, at);
	snprintf(at, sizeof at, "%s:12:", conf_path);
	l12 = strstr(errors, at);
	ck_assert(errors == l1 && l1 < l2 && l2 < l7 && l7 < l12);
	free(errors);
}
END_TEST

START_TEST(test_invalid_words)
{
	char *errors = load_fail(
	    "log_level = \"verbose\";\n"				/* 1 */
	    "syncs = (\n"						/* 2 */
	    "  {\n"							/* 3 */
	    "    name = \"p\";\n"					/* 4 */
	    "    source = \"/srv/p\";\n"				/* 5 */
	    "    destinations = ( \"/b/p\" );\n"			/* 6 */
	    "    compare = \"sha1\";\n"					/* 7 */
	    "  }\n"
	    ");\n");

	ASSERT_PROBLEM(errors, 1, "log_level: must be one of \"error\", "
	    "\"warn\", \"info\", \"debug\", got string \"verbose\"");
	ASSERT_PROBLEM(errors, 7, "sync 'p': compare: must be \"mtime\" or "
	    "\"hash\", got string \"sha1\"");
	ck_assert_uint_eq(count_lines(errors), 2);
	free(errors);
}
END_TEST

START_TEST(test_unreadable_file)
{
	Config *cfg = (Config *)0x1;
	char *errors = NULL, expected[PATH_MAX + 128];

	snprintf(conf_path, sizeof conf_path, "%s/missing.conf", tmpdir);
	ck_assert_int_eq(config_load(conf_path, &cfg, &errors), -ENOENT);
	ck_assert_ptr_eq(cfg, (Config *)0x1);
	snprintf(expected, sizeof expected,
	    "%s: cannot read: No such file or directory\n", conf_path);
	ck_assert_str_eq(errors, expected);
	free(errors);

	errors = NULL;
	ck_assert_int_eq(config_load(tmpdir, &cfg, &errors), -EISDIR);
	snprintf(expected, sizeof expected, "%s: cannot read: Is a directory\n",
	    tmpdir);
	ck_assert_str_eq(errors, expected);
	free(errors);

	if (geteuid() != 0) {
		snprintf(conf_path, sizeof conf_path, "%s/treesync.conf",
		    tmpdir);
		write_conf("workers = 4;\n");
		ck_assert_int_eq(chmod(conf_path, 0), 0);
		errors = NULL;
		ck_assert_int_eq(config_load(conf_path, &cfg, &errors),
		    -EACCES);
		ck_assert(strstr(errors, ": cannot read: Permission denied\n"));
		free(errors);
	}
}
END_TEST

/* Remotes and "NAME:/path" destinations (SPEC "Remote destinations"). */
START_TEST(test_remotes)
{
	char *text, *errors = NULL;
	char key[PATH_MAX + 16], kh[PATH_MAX + 16], src[PATH_MAX + 16];
	Config *cfg;
	FILE *f;

	snprintf(key, sizeof key, "%s/key", tmpdir);
	snprintf(kh, sizeof kh, "%s/known_hosts", tmpdir);
	snprintf(src, sizeof src, "%s/src", tmpdir);
	ck_assert_int_eq(mkdir(src, 0755), 0);
	ck_assert_ptr_nonnull(f = fopen(key, "w"));
	fclose(f);
	ck_assert_int_eq(chmod(key, 0600), 0);
	ck_assert_int_ge(asprintf(&text,
	    "control_socket = \"%s/c.sock\";\n"			/* 1 */
	    "syncs = ( {\n"						/* 2 */
	    "  name = \"site\";\n"					/* 3 */
	    "  source = \"%s\";\n"					/* 4 */
	    "  exclude = ( \"*.swp\" );\n"				/* 5 */
	    "  destinations = ( \"/backup/site\",\n"			/* 6 */
	    "    \"web2:/srv//site/\" );\n"				/* 7 */
	    "} );\n"							/* 8 */
	    "remotes = ( {\n"						/* 9 */
	    "  name = \"web2\";\n"					/* 10 */
	    "  host = \"10.1.2.3\";\n"				/* 11 */
	    "  port = 2222;\n"						/* 12 */
	    "  user = \"tsync\";\n"					/* 13 */
	    "  identity = \"%s\";\n"					/* 14 */
	    "  known_hosts = \"%s\";\n"				/* 15 */
	    "  bwlimit = \"20M\";\n"					/* 16 */
	    "  timeout = 7;\n"						/* 17 */
	    "} );\n", tmpdir, src, key, kh), 0);
	cfg = load_ok(text);
	free(text);
	ck_assert_uint_eq(cfg->n_remotes, 1);
	ck_assert_str_eq(cfg->remotes[0].host, "10.1.2.3");
	ck_assert_int_eq(cfg->remotes[0].port, 2222);
	ck_assert_str_eq(cfg->remotes[0].user, "tsync");
	ck_assert_uint_eq(cfg->remotes[0].bwlimit_kib, 20480);
	ck_assert_int_eq(cfg->remotes[0].timeout_s, 7);
	ck_assert_ptr_nonnull(strstr(cfg->remotes[0].control_path, "/ssh-web2"));
	ck_assert_str_eq(cfg->syncs[0].destinations[1], "web2:/srv/site");
	ck_assert_ptr_null(cfg->syncs[0].dest_remotes[0]);
	ck_assert_ptr_eq(cfg->syncs[0].dest_remotes[1], &cfg->remotes[0]);
	/* known_hosts does not exist: --check-config names it and its line. */
	ck_assert_int_eq(config_check_sources(cfg, &errors), -EINVAL);
	ASSERT_PROBLEM(errors, 15, "remote 'web2': known_hosts '", "No such "
	    "file");
	free(errors);
	config_free(cfg);

	errors = load_fail(
	    "remotes = ( {\n"						/* 1 */
	    "  name = \"web2\";\n"					/* 2 */
	    "  host = \"-oProxyCommand=sh\";\n"			/* 3 */
	    "  identity = \"key\";\n"					/* 4 */
	    "} );\n"							/* 5 */
	    "syncs = ( {\n"						/* 6 */
	    "  name = \"site\";\n"					/* 7 */
	    "  source = \"/srv/site\";\n"				/* 8 */
	    "  exclude = ( \"[[=a=]]\" );\n"				/* 9 */
	    "  destinations = ( \"web3:/x\",\n"			/* 10 */
	    "    \"web2:x\",\n"						/* 11 */
	    "    \"web2:/\", \"web2:/ok\" );\n"			/* 12 */
	    "} );\n");
	ASSERT_PROBLEM(errors, 3, "remote 'web2': host:", "no leading '-'");
	ASSERT_PROBLEM(errors, 4, "remote 'web2': identity:", "absolute");
	ASSERT_PROBLEM(errors, 1, "remote 'web2': missing required key "
	    "'known_hosts'");
	ASSERT_PROBLEM(errors, 9, "exclude: entry 1: rsync cannot be told");
	ASSERT_PROBLEM(errors, 10, "'web3' is not a remote declared");
	ASSERT_PROBLEM(errors, 11, "must be absolute");
	ASSERT_PROBLEM(errors, 12, "not '/' itself");
	free(errors);
}
END_TEST

START_TEST(test_check_sources)
{
	char *text, *errors = NULL;
	char dir[PATH_MAX + 16], file[PATH_MAX + 16];
	Config *cfg;
	FILE *f;

	snprintf(dir, sizeof dir, "%s/src", tmpdir);
	snprintf(file, sizeof file, "%s/file", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_ge(asprintf(&text,
	    "syncs = (\n"						/* 1 */
	    "  {\n"							/* 2 */
	    "    name = \"ok\";\n"					/* 3 */
	    "    source = \"%s\";\n"					/* 4 */
	    "    destinations = ( \"/tmp/ok\" );\n"			/* 5 */
	    "  },\n"							/* 6 */
	    "  {\n"							/* 7 */
	    "    name = \"gone\";\n"					/* 8 */
	    "    destinations = ( \"/tmp/gone\" );\n"		/* 9 */
	    "    source = \"%s/missing\";\n"				/* 10 */
	    "  },\n"							/* 11 */
	    "  {\n"							/* 12 */
	    "    name = \"file\";\n"					/* 13 */
	    "    source = \"%s\";\n"					/* 14 */
	    "    destinations = ( \"/tmp/file\" );\n"		/* 15 */
	    "  }\n"
	    ");\n", dir, tmpdir, file), 0);
	cfg = load_ok(text);
	free(text);
	ck_assert_int_eq(cfg->syncs[1].source_line, 10);

	ck_assert_int_eq(config_check_sources(cfg, &errors), -EINVAL);
	ck_assert_ptr_nonnull(errors);
	ASSERT_PROBLEM(errors, 10, "sync 'gone': source '", "/missing': No "
	    "such file or directory");
	ASSERT_PROBLEM(errors, 14, "sync 'file': source '", "/file': Not a "
	    "directory");
	ck_assert_uint_eq(count_lines(errors), 2);
	free(errors);
	config_free(cfg);

	ck_assert_int_ge(asprintf(&text, "syncs = ( { name = \"ok\"; "
	    "source = \"%s\"; destinations = ( \"/b\" ); } );\n", dir), 0);
	cfg = load_ok(text);
	free(text);
	errors = (char *)0x1;
	ck_assert_int_eq(config_check_sources(cfg, &errors), 0);
	ck_assert_ptr_null(errors);
	config_free(cfg);
}
END_TEST

START_TEST(test_invalid_exclude)
{
	char *errors = load_fail(ONE_SYNC(
	    "    name = \"p\";\n"					/* 4 */
	    "    source = \"/srv/p\";\n"				/* 5 */
	    "    destinations = ( \"/b/p\" );\n"			/* 6 */
	    "    exclude = ( \"*.o\",\n"				/* 7 */
	    "      \"\",\n"						/* 8 */
	    "      \"//\" );\n"));					/* 9 */

	ASSERT_PROBLEM(errors, 8, "sync 'p': exclude: entry 2: a pattern may "
	    "not be empty");
	ASSERT_PROBLEM(errors, 9, "sync 'p': exclude: entry 3", "\"//\"");
	ck_assert_uint_eq(count_lines(errors), 2);
	free(errors);
}
END_TEST

#ifdef TREESYNC_SOURCE_ROOT
/* The commented example that ships must itself be valid. */
/* Found by tests/fuzz/fuzz-config: a newline in a path split a problem
 * over two lines, the second without FILE:LINE. */
START_TEST(test_control_characters_in_messages_escaped)
{
	char *errors = load_fail(
	    "control_socket = \"/tmp/a\\nb/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\";\n"
	    "syncs = ( { name = \"t\"; source = \"/s\\tx\";\n"
	    "  destinations = ( \"/s\\tx/in\" ); } );\n");

	ck_assert_uint_eq(count_lines(errors), 2);
	ck_assert_msg(strstr(errors, "/tmp/a\\x0ab/") != NULL, "%s", errors);
	ck_assert_msg(strstr(errors, "'/s\\x09x/in'") != NULL, "%s", errors);
	for (const char *l = errors; *l != '\0'; l = strchr(l, '\n') + 1)
		ck_assert_msg(strncmp(l, conf_path, strlen(conf_path)) == 0,
		    "%s", errors);
	free(errors);
}
END_TEST

/*
 * The shipped example: valid as it is (no sync yet: the packaged daemon
 * starts idle), and its commented-out pair is valid once the '#' in the
 * first column of its lines is removed, as the file tells the reader.
 */
START_TEST(test_shipped_example)
{
	Config *cfg = NULL;
	char *errors = NULL, *text = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *in, *out;
	bool in_syncs = false;
	int r;

	r = config_load(TREESYNC_SOURCE_ROOT "/conf/treesync.conf", &cfg,
	    &errors);
	ck_assert_msg(r == 0, "%s", errors ? errors : "");
	ck_assert_uint_eq(cfg->n_syncs, 0);
	config_free(cfg);

	in = fopen(TREESYNC_SOURCE_ROOT "/conf/treesync.conf", "r");
	ck_assert_ptr_nonnull(in);
	ck_assert_int_ge(getdelim(&text, &len, '\0', in), 1);
	fclose(in);
	out = fopen(conf_path, "w");
	ck_assert_ptr_nonnull(out);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "syncs = (") == 0)
			in_syncs = true;
		else if (strcmp(line, ");") == 0)
			in_syncs = false;
		fprintf(out, "%s\n", in_syncs && line[0] == '#' ? line + 1 :
		    line);
	}
	fclose(out);
	free(text);
	r = config_load(conf_path, &cfg, &errors);
	ck_assert_msg(r == 0, "%s", errors ? errors : "");
	ck_assert_uint_eq(cfg->n_syncs, 1);
	ck_assert_str_eq(cfg->syncs[0].name, "projects");
	ck_assert_str_eq(cfg->syncs[0].source, "/srv/projects");
	ck_assert_uint_eq(cfg->syncs[0].n_destinations, 2);
	ck_assert_uint_eq(exclude_count(cfg->syncs[0].exclude), 4);
	ck_assert_int_eq(cfg->syncs[0].max_delete.kind, MAX_DELETE_PERCENT);
	config_free(cfg);
}
END_TEST
#endif

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_valid_spec_example);
	tcase_add_test(tc, test_valid_other_values);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_watch_mode);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_unknown_top_level_key);
	tcase_add_test(tc, test_unknown_sync_key);
	tcase_add_test(tc, test_wrong_types);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_integers_as_written);
	tcase_add_test(tc, test_integers_that_fit);
	tcase_add_test(tc, test_missing_include_is_named);
	tcase_add_test(tc, test_unquoted_string_gets_a_hint);
	tcase_add_test(tc, test_check_parents_exist);
	tcase_add_test(tc, test_relative_paths);
	tcase_add_test(tc, test_dotdot_in_path);
	tcase_add_test(tc, test_missing_required);
	tcase_add_test(tc, test_empty_lists);
	tcase_add_test(tc, test_no_syncs);
	tcase_add_test(tc, test_metrics_listen);
	tcase_add_test(tc, test_control_socket_group);
	tcase_add_test(tc, test_duplicate_name);
	tcase_add_test(tc, test_bad_name);
	tcase_add_test(tc, test_destination_inside_source);
	tcase_add_test(tc, test_source_inside_destination);
	tcase_add_test(tc, test_same_destination_twice);
	tcase_add_test(tc, test_two_syncs_same_destination);
	tcase_add_test(tc, test_nested_destinations_across_syncs);
	tcase_add_test(tc, test_component_boundaries);
	tcase_add_test(tc, test_symlinked_alias);
	tcase_add_test(tc, test_multiple_errors_together);
	tcase_add_test(tc, test_invalid_words);
	tcase_add_test(tc, test_unreadable_file);
	tcase_add_test(tc, test_check_sources);
	tcase_add_test(tc, test_remotes);
	tcase_add_test(tc, test_invalid_exclude);
	tcase_add_test(tc, test_max_delete);
	tcase_add_test(tc, test_max_delete_invalid);
#ifdef TREESYNC_SOURCE_ROOT
	tcase_add_test(tc, test_control_characters_in_messages_escaped);
	tcase_add_test(tc, test_shipped_example);
#endif
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
