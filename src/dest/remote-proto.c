/*
 * remote-proto — see include/dest/remote-proto.h.
 *
 * Both programs link this file: treesyncd to talk, treesync-remote to
 * answer. Nothing here reads or writes a descriptor or allocates; a line is
 * decoded in the caller's buffer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest/remote-proto.h"

/* The errno names a response may carry: the ones a file operation beneath
 * a root can produce, plus the protocol's own. Others travel as E<n>. */
static const struct errno_name {
	int err;
	const char *name;
} errno_names[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
	{ E2BIG, "E2BIG" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
	{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EBUSY, "EBUSY" },
	{ EEXIST, "EEXIST" }, { EXDEV, "EXDEV" }, { ENOTDIR, "ENOTDIR" },
	{ EISDIR, "EISDIR" }, { EINVAL, "EINVAL" }, { ENFILE, "ENFILE" },
	{ EMFILE, "EMFILE" }, { ETXTBSY, "ETXTBSY" }, { EFBIG, "EFBIG" },
	{ ENOSPC, "ENOSPC" }, { EROFS, "EROFS" }, { EMLINK, "EMLINK" },
	{ ENAMETOOLONG, "ENAMETOOLONG" }, { ENOSYS, "ENOSYS" },
	{ ENOTEMPTY, "ENOTEMPTY" }, { ELOOP, "ELOOP" }, { EDQUOT, "EDQUOT" },
	{ ESTALE, "ESTALE" }, { EPROTO, "EPROTO" }, { EOVERFLOW, "EOVERFLOW" },
	{ EOPNOTSUPP, "EOPNOTSUPP" }, { ECANCELED, "ECANCELED" },
	{ ENODEV, "ENODEV" }, { ENXIO, "ENXIO" }, { EFAULT, "EFAULT" },
	{ EUCLEAN, "EUCLEAN" },
};

static bool
needs_escape(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || c == '%';
}

static int
put(char *out, size_t size, size_t *pos, const char *s, size_t len)
{
	if (*pos + len + 1 > size)
		return -ENOSPC;
	memcpy(out + *pos, s, len);
	*pos += len;
	out[*pos] = '\0';
	return 0;
}

int
remote_proto_escape(char *out, size_t size, size_t *pos, const char *data,
    size_t len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		if (needs_escape(c)) {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			if (put(out, size, pos, e, 3) < 0)
				return -ENOSPC;
		} else if (put(out, size, pos, (const char *)&c, 1) < 0) {
			return -ENOSPC;
		}
	}
	return 0;
}

static bool
valid_verb(const char *verb)
{
	if (verb == NULL || *verb == '\0')
		return false;
	for (; *verb != '\0'; verb++)
		if (*verb < 'A' || *verb > 'Z')
			return false;
	return true;
}

/* "ID WORD": the start every line shares. */
static int
put_head(char *out, size_t size, size_t *pos, uint64_t id, const char *word)
{
	char head[32];
	int n;

	if (id == 0 || id > INT64_MAX)
		return -EINVAL;
	n = snprintf(head, sizeof head, "%" PRIu64 " ", id);
	if (put(out, size, pos, head, (size_t)n) < 0 ||
	    put(out, size, pos, word, strlen(word)) < 0)
		return -ENOSPC;
	return 0;
}

/* The line's length, or -ENOSPC past either limit. */
static int
finish(char *out, size_t size, size_t *pos)
{
	if (put(out, size, pos, "\n", 1) < 0 || *pos > REMOTE_PROTO_MAX_LINE)
		return -ENOSPC;
	return (int)*pos;
}

int
remote_proto_format_request(char *out, size_t size, uint64_t id,
    const char *verb, const char *const *args, size_t nargs)
{
	size_t pos = 0;
	int r;

	if (!valid_verb(verb) || nargs > REMOTE_PROTO_MAX_FIELDS)
		return -EINVAL;
	if ((r = put_head(out, size, &pos, id, verb)) < 0)
		return r;
	for (size_t i = 0; i < nargs; i++) {
		if (put(out, size, &pos, " ", 1) < 0 ||
		    remote_proto_escape(out, size, &pos, args[i],
		    strlen(args[i])) < 0)
			return -ENOSPC;
	}
	return finish(out, size, &pos);
}

int
remote_proto_format_ok(char *out, size_t size, uint64_t id,
    const char *const (*kv)[2], size_t nkv)
{
	size_t pos = 0;
	int r;

	if (nkv > REMOTE_PROTO_MAX_FIELDS)
		return -EINVAL;
	if ((r = put_head(out, size, &pos, id, "OK")) < 0)
		return r;
	for (size_t i = 0; i < nkv; i++) {
		if (put(out, size, &pos, " ", 1) < 0 ||
		    remote_proto_escape(out, size, &pos, kv[i][0],
		    strlen(kv[i][0])) < 0 ||
		    put(out, size, &pos, "=", 1) < 0 ||
		    remote_proto_escape(out, size, &pos, kv[i][1],
		    strlen(kv[i][1])) < 0)
			return -ENOSPC;
	}
	return finish(out, size, &pos);
}

int
remote_proto_format_error(char *out, size_t size, uint64_t id, int err,
    const char *message)
{
	const char *name = remote_proto_errno_name(err);
	char numbered[16];
	size_t pos = 0;
	int r;

	if (err <= 0)
		return -EINVAL;
	if (name == NULL) {
		snprintf(numbered, sizeof numbered, "E%d", err);
		name = numbered;
	}
	/* Id 0 answers a line whose own id could not be read. */
	if (id == 0) {
		if (put(out, size, &pos, "0 ", 2) < 0 ||
		    put(out, size, &pos, name, strlen(name)) < 0)
			return -ENOSPC;
	} else if ((r = put_head(out, size, &pos, id, name)) < 0) {
		return r;
	}
	if (put(out, size, &pos, " ", 1) < 0 ||
	    remote_proto_escape(out, size, &pos, message, strlen(message)) < 0)
		return -ENOSPC;
	return finish(out, size, &pos);
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes s[0..len) in place; the decoded length, or -EPROTO. */
static long
unescape(char *s, size_t len)
{
	size_t r = 0, w = 0;

	while (r < len) {
		if (s[r] == '%') {
			int hi, lo;

			if (len - r < 3)
				return -EPROTO;
			hi = hex_value(s[r + 1]);
			lo = hex_value(s[r + 2]);
			if (hi < 0 || lo < 0)
				return -EPROTO;
			s[w++] = (char)(hi << 4 | lo);
			r += 3;
		} else {
			s[w++] = s[r++];
		}
	}
	s[w] = '\0';
	return (long)w;
}

int
remote_proto_parse(char *line, size_t len, RemoteProtoLine *out)
{
	char *p, *end, *tok;
	uint64_t id = 0;

	memset(out, 0, sizeof *out);
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len == 0 || memchr(line, '\0', len) != NULL ||
	    memchr(line, '\n', len) != NULL)
		return -EPROTO;
	line[len] = '\0';
	end = line + len;
	/* The id: decimal digits, no sign, no leading zero but for "0". */
	for (p = line; p < end && *p >= '0' && *p <= '9'; p++) {
		if (id > (UINT64_C(1) << 63) / 10)
			return -EPROTO;
		id = id * 10 + (uint64_t)(*p - '0');
	}
	if (p == line || p == end || *p != ' ' || id > INT64_MAX ||
	    (line[0] == '0' && p - line > 1))
		return -EPROTO;
	out->id = id;
	*p++ = '\0';
	tok = p;
	while (p < end && *p != ' ')
		p++;
	if (p == tok)
		return -EPROTO;
	out->word = tok;
	while (p < end) {
		long n;

		*p++ = '\0';
		tok = p;
		while (p < end && *p != ' ')
			p++;
		if (out->nfields == REMOTE_PROTO_MAX_FIELDS)
			return -EPROTO;
		/* Two spaces in a row would be an empty field: the encoder
		 * never writes one, so it is a broken line. */
		if (p == tok)
			return -EPROTO;
		*p = '\0';
		if ((n = unescape(tok, (size_t)(p - tok))) < 0)
			return -EPROTO;
		out->field[out->nfields] = tok;
		out->len[out->nfields] = (size_t)n;
		out->nfields++;
	}
	return 0;
}

int
remote_proto_status(const RemoteProtoLine *line)
{
	int err;

	if (strcmp(line->word, "OK") == 0)
		return 0;
	err = remote_proto_errno_from_name(line->word);
	return err > 0 ? err : EPROTO;
}

const char *
remote_proto_field(const RemoteProtoLine *line, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < line->nfields; i++)
		if (strncmp(line->field[i], key, klen) == 0 &&
		    line->field[i][klen] == '=')
			return line->field[i] + klen + 1;
	return NULL;
}

const char *
remote_proto_errno_name(int err)
{
	for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	return NULL;
}

int
remote_proto_errno_from_name(const char *name)
{
	char *end;
	long n;

	if (name[0] != 'E' || name[1] == '\0')
		return 0;
	for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
		if (strcmp(errno_names[i].name, name) == 0)
			return errno_names[i].err;
	if (name[1] < '1' || name[1] > '9')
		return 0;
	errno = 0;
	n = strtol(name + 1, &end, 10);
	if (errno != 0 || *end != '\0' || n <= 0 || n > 4095)
		return 0;
	return (int)n;
}

bool
remote_proto_valid_path(const char *path, size_t len)
{
	const char *p = path, *end = path + len;

	if (len == 0 || len > REMOTE_PROTO_MAX_PATH || strlen(path) != len ||
	    path[0] == '/')
		return false;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = (size_t)((slash != NULL ? slash : end) - p);

		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (slash == NULL)
			break;
		p = slash + 1;
		if (p == end)	/* a trailing '/': an empty last component */
			return false;
	}
	return true;
}

static bool
lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool
remote_proto_valid_tag(const char *tag)
{
	return strlen(tag) == REMOTE_PROTO_TAG_LEN &&
	    lower_hex(tag, REMOTE_PROTO_TAG_LEN);
}

bool
remote_proto_is_temp_name(const char *name, const char *tag, bool *same_tag)
{
	const size_t plen = sizeof REMOTE_PROTO_TEMP_PREFIX - 1;
	const char *t, *n;
	size_t nlen;

	if (same_tag != NULL)
		*same_tag = false;
	if (strncmp(name, REMOTE_PROTO_TEMP_PREFIX, plen) != 0)
		return false;
	t = name + plen;
	if (strlen(t) < REMOTE_PROTO_TAG_LEN + 2 ||
	    !lower_hex(t, REMOTE_PROTO_TAG_LEN) || t[REMOTE_PROTO_TAG_LEN] != '.')
		return false;
	n = t + REMOTE_PROTO_TAG_LEN + 1;
	nlen = strlen(n);
	if (nlen < 1 || nlen > 16 || !lower_hex(n, nlen))
		return false;
	if (same_tag != NULL && tag != NULL)
		*same_tag = strncmp(t, tag, REMOTE_PROTO_TAG_LEN) == 0;
	return true;
}

long
remote_proto_line_length(const char *buf, size_t len)
{
	size_t scan = len < REMOTE_PROTO_MAX_LINE ? len : REMOTE_PROTO_MAX_LINE;
	const char *nl = memchr(buf, '\n', scan);

	if (nl != NULL)
		return (long)(nl - buf) + 1;
	return len >= REMOTE_PROTO_MAX_LINE ? -EMSGSIZE : 0;
}
