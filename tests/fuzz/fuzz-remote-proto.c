/*
 * fuzz-remote-proto — the ops protocol's decoder on any bytes, and the
 * encoder's promise: whatever remote_proto_parse accepts, its fields
 * written back out with remote_proto_format_request parse again to the
 * same bytes; an encoded line never holds a '\n' before its end nor a
 * byte the escaping should have hidden; remote_proto_valid_path accepts
 * no path with a "..", "." or empty component, a leading '/' or a NUL.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <string.h>

#include "dest/remote-proto.h"
#include "fuzz.h"

static void
check_path_rule(const char *p, size_t len)
{
	bool ok = remote_proto_valid_path(p, len);
	const char *c = p, *end = p + len;

	if (!ok)
		return;
	FUZZ_CHECK(len > 0 && p[0] != '/' && memchr(p, '\0', len) == NULL,
	    "path '%.*s'", (int)len, p);
	while (c <= end) {
		const char *slash = memchr(c, '/', (size_t)(end - c));
		size_t n = (size_t)((slash ? slash : end) - c);

		FUZZ_CHECK(n > 0 && !(n == 1 && c[0] == '.') &&
		    !(n == 2 && c[0] == '.' && c[1] == '.'),
		    "component in '%.*s'", (int)len, p);
		if (slash == NULL)
			break;
		c = slash + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[REMOTE_PROTO_MAX_LINE + 1];
	static char out[REMOTE_PROTO_MAX_LINE + 1];
	static char again[REMOTE_PROTO_MAX_LINE + 1];
	const char *args[REMOTE_PROTO_MAX_FIELDS];
	RemoteProtoLine l, m;
	int n;

	if (size > REMOTE_PROTO_MAX_LINE)
		return 0;
	memcpy(line, data, size);
	(void)remote_proto_line_length(line, size);
	if (remote_proto_parse(line, size, &l) != 0)
		return 0;
	for (size_t i = 0; i < l.nfields; i++) {
		check_path_rule(l.field[i], l.len[i]);
		(void)remote_proto_is_temp_name(l.field[i], "0123abcd", NULL);
		args[i] = l.field[i];
	}
	(void)remote_proto_status(&l);
	/* Fields with a NUL cannot go back through the C-string encoder. */
	for (size_t i = 0; i < l.nfields; i++)
		if (strlen(l.field[i]) != l.len[i])
			return 0;
	if (l.id == 0 || strspn(l.word, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
	    strlen(l.word))
		return 0;
	n = remote_proto_format_request(out, sizeof out, l.id, l.word, args,
	    l.nfields);
	if (n < 0)
		return 0;
	FUZZ_CHECK(out[n - 1] == '\n' && memchr(out, '\n', (size_t)n - 1) ==
	    NULL, "encoded line '%s'", out);
	memcpy(again, out, (size_t)n);
	FUZZ_CHECK(remote_proto_parse(again, (size_t)n, &m) == 0, "'%s'", out);
	FUZZ_CHECK(m.id == l.id && strcmp(m.word, l.word) == 0 &&
	    m.nfields == l.nfields, "'%s'", out);
	for (size_t i = 0; i < l.nfields; i++)
		FUZZ_CHECK(m.len[i] == l.len[i] &&
		    memcmp(m.field[i], l.field[i], l.len[i]) == 0,
		    "field %zu of '%s'", i, out);
	return 0;
}
