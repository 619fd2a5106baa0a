/*
 * fuzz-config — config_load and config_check_sources on arbitrary bytes.
 *
 * The input is the whole config file. It goes into a memfd and is loaded
 * through /proc/self/fd/N, so nothing is written to disk per run. Checked
 * beyond "no crash, no leak": the error convention of config.h (exactly
 * one of *ret / *errors, every error line starting with the file's name),
 * and that a config that loads holds only what validation promises.
 *
 * @include: libconfig reads the named file relative to the working
 * directory. To keep the fuzzer from reading the machine's files (or
 * /dev/zero forever), an input whose include names anything but a plain
 * name of a file in our own scratch directory is skipped; that directory
 * holds two small files, so includes are still exercised.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "service/config.h"
#include "fuzz.h"

static int memfd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/treesync-fuzz-config.XXXXXX";
	FILE *f;

	(void)argc;
	(void)argv;
	memfd = memfd_create("treesync-fuzz.conf", MFD_CLOEXEC);
	if (memfd < 0 || mkdtemp(dir) == NULL || chdir(dir) < 0) {
		perror("fuzz-config: set-up");
		exit(1);
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	/* Include targets: a global setting and a sync group. */
	if ((f = fopen("globals.inc", "w")) == NULL)
		goto fail;
	fputs("workers = 2;\ndelay_ms = 10;\n", f);
	fclose(f);
	if ((f = fopen("sync.inc", "w")) == NULL)
		goto fail;
	fputs("{ name = \"inc\"; source = \"/tmp/a\";\n"
	    "  destinations = ( \"/tmp/b\" ); exclude = ( \"*.o\" ); }\n", f);
	fclose(f);
	return 0;
fail:
	perror("fuzz-config: include files");
	exit(1);
}

/* Every @include must name globals.inc or sync.inc (see the top). */
static bool
includes_are_ours(const char *text)
{
	const char *p = text;

	while ((p = strstr(p, "@include")) != NULL) {
		const char *q = strchr(p, '"');
		size_t n;

		if (q == NULL)
			return true;	/* a syntax error, nothing read */
		q++;
		n = strcspn(q, "\"");
		if (!((n == 11 && strncmp(q, "globals.inc", n) == 0) ||
		    (n == 8 && strncmp(q, "sync.inc", n) == 0)))
			return false;
		p = q + n;
	}
	return true;
}

/* An absolute path with no empty, "." or ".." component, no trailing '/'. */
static bool
normalized(const char *p)
{
	if (p == NULL || p[0] != '/')
		return false;
	if (strcmp(p, "/") == 0)
		return true;
	while (*p == '/') {
		size_t n = strcspn(p + 1, "/");

		if (n == 0 || (n == 1 && p[1] == '.') ||
		    (n == 2 && p[1] == '.' && p[2] == '.'))
			return false;
		p += 1 + n;
	}
	return *p == '\0';
}

static void
check_errors(const char *errors)
{
	const char *line = errors;

	FUZZ_CHECK(errors != NULL && errors[0] != '\0', "no error text");
	FUZZ_CHECK(errors[strlen(errors) - 1] == '\n', "unterminated: %s",
	    errors);
	/* Lines come from the main file or an included one; the main
	 * file's name starts every line that is not an include's. */
	while (*line != '\0') {
		const char *end = strchr(line, '\n');

		FUZZ_CHECK(strncmp(line, path, strlen(path)) == 0 ||
		    strncmp(line, "globals.inc", 11) == 0 ||
		    strncmp(line, "sync.inc", 8) == 0,
		    "error line without its file: %.*s", (int)(end - line),
		    line);
		line = end + 1;
	}
}

static void
check_config(const Config *cfg)
{
	FUZZ_CHECK(cfg->workers >= 1 && cfg->workers <= CONFIG_MAX_WORKERS,
	    "workers %d", cfg->workers);
	FUZZ_CHECK(cfg->delay_ms >= 0 && cfg->delay_ms <= CONFIG_MAX_DELAY_MS,
	    "delay_ms %d", cfg->delay_ms);
	FUZZ_CHECK(cfg->control_socket != NULL, "no control socket");
	/* syncs = ( ); is valid: the daemon idles until a reload. */
	FUZZ_CHECK(cfg->n_syncs > 0 || cfg->syncs == NULL, "no sync, a table");
	if (cfg->metrics_listen != NULL) {
		const struct sockaddr_in *v4 =
		    (const struct sockaddr_in *)&cfg->metrics_addr;
		const struct sockaddr_in6 *v6 =
		    (const struct sockaddr_in6 *)&cfg->metrics_addr;

		FUZZ_CHECK(v4->sin_family == AF_INET ? cfg->metrics_addrlen ==
		    sizeof *v4 && v4->sin_port != 0 : v6->sin6_family ==
		    AF_INET6 && cfg->metrics_addrlen == sizeof *v6 &&
		    v6->sin6_port != 0, "metrics_listen '%s' parsed wrong",
		    cfg->metrics_listen);
	}
	FUZZ_CHECK(cfg->control_socket_group == NULL ||
	    cfg->control_socket_group[0] != '\0', "empty group name");
	for (size_t i = 0; i < cfg->n_syncs; i++) {
		const SyncPairConfig *p = &cfg->syncs[i];

		FUZZ_CHECK(p->name != NULL && p->name[0] != '\0' &&
		    p->name[0] != '-', "sync %zu: bad name", i);
		FUZZ_CHECK(config_find_sync(cfg, p->name) == p,
		    "name '%s' not unique", p->name);
		FUZZ_CHECK(normalized(p->source), "source '%s'", p->source);
		FUZZ_CHECK(p->exclude != NULL, "sync '%s': no Exclude", p->name);
		FUZZ_CHECK(p->n_destinations > 0, "sync '%s': no destination",
		    p->name);
		for (size_t j = 0; j < p->n_destinations; j++) {
			const char *d = p->destinations[j];
			size_t n = strlen(p->source);

			FUZZ_CHECK(normalized(d), "destination '%s'", d);
			/* SPEC: neither inside the other (lexically). */
			FUZZ_CHECK(strcmp(d, p->source) != 0 &&
			    !(strncmp(d, p->source, n) == 0 &&
			    (d[n] == '/' || n == 1)),
			    "destination '%s' inside source '%s'", d,
			    p->source);
			FUZZ_CHECK(!(strncmp(p->source, d, strlen(d)) == 0 &&
			    (p->source[strlen(d)] == '/' || strlen(d) == 1)),
			    "source '%s' inside destination '%s'", p->source,
			    d);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Config *cfg = NULL;
	char *errors = NULL, *text;
	int r;

	/* libconfig reads C strings: a NUL ends the file early, which is
	 * fine, but includes_are_ours must see what libconfig sees. */
	text = strndup((const char *)data, size);
	if (text == NULL)
		return 0;
	if (!includes_are_ours(text))
		goto out;
	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) !=
	    (ssize_t)size) {
		perror("fuzz-config: memfd");
		abort();
	}
	r = config_load(path, &cfg, &errors);
	if (r == 0) {
		FUZZ_CHECK(cfg != NULL && errors == NULL, "r 0 without config");
		check_config(cfg);
		/* Only stat()s each source: harmless on any path. */
		r = config_check_sources(cfg, &errors);
		FUZZ_CHECK((r == 0) == (errors == NULL),
		    "check_sources r %d, errors %p", r, (void *)errors);
		if (errors != NULL)
			check_errors(errors);
	} else {
		FUZZ_CHECK(r == -EINVAL || r == -EIO || r == -ENOMEM,
		    "config_load returned %d", r);
		FUZZ_CHECK(cfg == NULL, "config set on failure");
		check_errors(errors);
	}
out:
	config_free(cfg);
	free(errors);
	free(text);
	return 0;
}
