/*
 * config-diag — the config's problems, each as "FILE:LINE: message": see
 * config-int.h. Problems are sorted by line before they are joined, so
 * the operator reads them in file order whatever pass found them. Where
 * libconfig says too little (a wrapped integer, "syntax error", an
 * @include it cannot open), the file's own text is read to say more.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config-int.h"


/*
 * Control characters in place as \xNN: a path may hold a newline, and a
 * problem must stay one "FILE:LINE: message" line (found by fuzz-config).
 * Returns a malloc'd copy or NULL.
 */
static char *
escape_controls(const char *s)
{
	size_t n = 0, i;
	char *out, *w;

	for (i = 0; s[i] != '\0'; i++)
		n += ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? 4 : 1;
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0, w = out; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			w += sprintf(w, "\\x%02x", c);
		else
			*w++ = (char)c;
	}
	*w = '\0';
	return out;
}


void
diag_vadd(struct problems *pb, const char *file, int line,
    const char *fmt, va_list ap)
{
	char *raw = NULL, *msg = NULL, *text = NULL;
	bool added = false;

	if (vasprintf(&raw, fmt, ap) < 0) {
		raw = NULL;
		goto out;
	}
	if ((msg = escape_controls(raw)) == NULL)
		goto out;
	if (file == NULL)
		file = pb->path;
	if ((line > 0 ? asprintf(&text, "%s:%d: %s\n", file, line, msg) :
	    asprintf(&text, "%s: %s\n", file, msg)) < 0) {
		text = NULL;
		goto out;
	}
	if (pb->n == pb->cap) {
		size_t cap = pb->cap ? pb->cap * 2 : 8;
		struct problem *v = realloc(pb->v, cap * sizeof *v);

		if (v == NULL)
			goto out;
		pb->v = v;
		pb->cap = cap;
	}
	pb->v[pb->n] = (struct problem){
		.text = text,
		.other_file = strcmp(file, pb->path) != 0,
		.line = line,
		.seq = pb->n,
	};
	pb->n++;
	text = NULL;
	added = true;
out:
	if (!added)
		pb->oom = true;
	free(text);
	free(msg);
	free(raw);
}


void
diag_add(struct problems *pb, const char *file, int line,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(pb, file, line, fmt, ap);
	va_end(ap);
}


static char *
read_text(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	if (getdelim(&text, &len, '\0', f) < 0) {
		free(text);
		text = NULL;
	}
	fclose(f);
	return text;
}


static bool
line_has_quote(const char *text, int line)
{
	const char *p = text, *end;

	for (; line > 1 && p != NULL; line--) {
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		return false;
	end = strchrnul(p, '\n');
	return memchr(p, '"', (size_t)(end - p)) != NULL;
}


const char *
diag_text_of(struct loader *ld, const char *file)
{
	for (size_t i = 0; i < ld->n_texts; i++)
		if (strcmp(ld->texts[i].path, file) == 0)
			return ld->texts[i].text;
	ld->texts = realloc(ld->texts, (ld->n_texts + 1) * sizeof *ld->texts);
	if (ld->texts == NULL)
		abort();	/* a few bytes: cannot fail short of OOM */
	ld->texts[ld->n_texts].path = strdup(file);
	ld->texts[ld->n_texts].text = read_text(file);
	if (ld->texts[ld->n_texts].path == NULL)
		abort();
	return ld->texts[ld->n_texts++].text;
}

void
diag_texts_free(struct loader *ld)
{
	for (size_t i = 0; i < ld->n_texts; i++) {
		free(ld->texts[i].path);
		free(ld->texts[i].text);
	}
	free(ld->texts);
	ld->texts = NULL;
	ld->n_texts = 0;
}

/* The text of line (from 1) into buf, without its newline; false if none. */
static bool
line_text(const char *text, int line, char *buf, size_t size)
{
	const char *p = text, *end;
	size_t n;

	if (text == NULL || line < 1)
		return false;
	for (; line > 1 && p != NULL; line--)
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	if (p == NULL)
		return false;
	end = strchrnul(p, '\n');
	n = (size_t)(end - p) < size - 1 ? (size_t)(end - p) : size - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

/*
 * The line of setting s. libconfig dates a string in a list to the token
 * after it (it looks ahead for adjacent literals to join), so the last path
 * of a list whose ')' is on a line of its own would point at the ')'; for
 * those, walk back to the line that holds the closing quote.
 */
int
diag_line_of(struct loader *ld, const config_setting_t *s)
{
	const config_setting_t *parent = config_setting_parent(s);
	const char *file = config_setting_source_file(s);
	int line = config_setting_source_line(s);

	if (config_setting_type(s) != CONFIG_TYPE_STRING || parent == NULL ||
	    (!config_setting_is_list(parent) &&
	    !config_setting_is_array(parent)) ||
	    (file != NULL && strcmp(file, ld->path) != 0))
		return line;
	const char *text = diag_text_of(ld, ld->path);

	if (text == NULL)
		return line;
	while (line > 1 && !line_has_quote(text, line))
		line--;
	return line;
}


/* A problem at setting at (NULL: the file as a whole). */
void
diag_report(struct loader *ld, const config_setting_t *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (at != NULL)
		diag_vadd(&ld->pb, config_setting_source_file(at),
		    diag_line_of(ld, at), fmt, ap);
	else
		diag_vadd(&ld->pb, NULL, 0, fmt, ap);
	va_end(ap);
}


static int
problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;

	if (x->other_file != y->other_file)
		return x->other_file ? 1 : -1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}


char *
diag_join(struct problems *pb)
{
	char *text = NULL, *w;
	size_t i, len = 0;

	if (pb->n == 0 && pb->oom) {
		if (asprintf(&text, "%s: out of memory\n", pb->path) < 0)
			text = NULL;
		return text;
	}
	qsort(pb->v, pb->n, sizeof *pb->v, problem_cmp);
	for (i = 0; i < pb->n; i++)
		len += strlen(pb->v[i].text);
	text = malloc(len + 1);
	if (text == NULL)
		return NULL;
	w = text;
	for (i = 0; i < pb->n; i++)
		w = stpcpy(w, pb->v[i].text);
	*w = '\0';
	return text;
}


void
diag_free(struct problems *pb)
{
	size_t i;

	for (i = 0; i < pb->n; i++)
		free(pb->v[i].text);
	free(pb->v);
}


/* s in double quotes, escaped and shortened, so that a message stays one line. */
void
diag_quote(const char *s, char *buf, size_t size)
{
	size_t w = 0, i;

	buf[w++] = '"';
	for (i = 0; s[i] != '\0' && w + 8 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			w += snprintf(buf + w, size - w, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			w += snprintf(buf + w, size - w, "\\x%02x", c);
		else
			buf[w++] = (char)c;
	}
	if (s[i] != '\0')
		w += snprintf(buf + w, size - w, "...");
	snprintf(buf + w, size - w, "\"");
}


/* "integer 5", "string \"4\"", "a list": what a setting holds, for "got ...". */
void
diag_describe(struct loader *ld, const config_setting_t *s, char *buf,
    size_t size)
{
	char q[96], digits[64];
	long long v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (diag_integer(ld, s, &v, digits, sizeof digits) == -ERANGE)
			snprintf(buf, size, "integer %s", digits);
		else
			snprintf(buf, size, "integer %lld", v);
		break;
	case CONFIG_TYPE_FLOAT:
		snprintf(buf, size, "float %g", config_setting_get_float(s));
		break;
	case CONFIG_TYPE_BOOL:
		snprintf(buf, size, "boolean %s",
		    config_setting_get_bool(s) ? "true" : "false");
		break;
	case CONFIG_TYPE_STRING:
		diag_quote(config_setting_get_string(s), q, sizeof q);
		snprintf(buf, size, "string %s", q);
		break;
	case CONFIG_TYPE_GROUP:
		snprintf(buf, size, "a group { ... }");
		break;
	case CONFIG_TYPE_ARRAY:
		snprintf(buf, size, "an array [ ... ]");
		break;
	case CONFIG_TYPE_LIST:
		snprintf(buf, size, "a list ( ... )");
		break;
	default:
		snprintf(buf, size, "nothing");
		break;
	}
}


static bool
same_letter(char a, char b)
{
	return tolower((unsigned char)a) == tolower((unsigned char)b);
}


/* Edit distance counting a swap of neighbours as one edit, ignoring case. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t d[33][33];
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > 32 || lb > 32)
		return (size_t)-1;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t cost = !same_letter(a[i - 1], b[j - 1]);
			size_t v = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 &&
			    same_letter(a[i - 1], b[j - 2]) &&
			    same_letter(a[i - 2], b[j - 1]) &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}


/* The known key that key is most likely a typo of, or NULL. */
static const char *
suggest(const char *key, const char *const *known)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1, i;

	for (i = 0; known[i] != NULL; i++) {
		size_t len = strlen(known[i]);
		size_t limit = len / 3 > 2 ? 2 : (len / 3 < 1 ? 1 : len / 3);
		size_t d = edit_distance(key, known[i]);

		if (d <= limit && d < best_d) {
			best = known[i];
			best_d = d;
		}
	}
	return best;
}


static bool
is_key_of(const char *key, const char *const *known)
{
	size_t i;

	for (i = 0; known[i] != NULL; i++)
		if (strcmp(key, known[i]) == 0)
			return true;
	return false;
}


/* in_sync: NULL at top level, else the label of the sync group. */
void
diag_unknown_key(struct loader *ld, const config_setting_t *s,
    const char *in_sync)
{
	const char *key = config_setting_name(s);
	const char *const *known = in_sync != NULL ? config_sync_keys :
	    config_global_keys;
	const char *const *other = in_sync != NULL ? config_global_keys :
	    config_sync_keys;
	const char *near = suggest(key, known);
	const char *in = in_sync != NULL ? " in " : "";

	if (in_sync == NULL)
		in_sync = "";
	if (near != NULL)
		diag_report(ld, s, "unknown key '%s'%s%s (did you mean '%s'?)", key,
		    in, in_sync, near);
	else if (is_key_of(key, other) && in[0] != '\0')
		diag_report(ld, s, "unknown key '%s'%s%s (it is a global setting; "
		    "move it to the top level)", key, in, in_sync);
	else if (is_key_of(key, other))
		diag_report(ld, s, "unknown key '%s' at the top level (it belongs "
		    "inside a sync group: syncs = ( { ... } ))", key);
	else
		diag_report(ld, s, "unknown key '%s'%s%s", key, in, in_sync);
}


/*
 * An integer literal at p as libconfig 1.5 reads one: [-+]digits or
 * 0x hex digits, then L or LL for 64 bits. Returns its length (0: none),
 * its exact value in *v unless *overflow (beyond 64 bits), and in *wraps
 * whether libconfig keeps something else than the exact value.
 */
static size_t
scan_integer(const char *p, long long *v, bool *overflow, bool *wraps)
{
	const char *s = p;
	bool neg = false, hex = false, is64;
	unsigned long long u = 0, limit;
	size_t nd = 0;

	*overflow = false;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isxdigit(
	    (unsigned char)s[2])) {
		hex = true;
		s += 2;
	}
	for (; hex ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s);
	    s++, nd++) {
		unsigned d = isdigit((unsigned char)*s) ? (unsigned)(*s - '0') :
		    (unsigned)(tolower((unsigned char)*s) - 'a' + 10);
		unsigned base = hex ? 16 : 10;

		if (u > (ULLONG_MAX - d) / base)
			*overflow = true;
		else
			u = u * base + d;
	}
	if (nd == 0 || *s == '.' || *s == 'e' || *s == 'E')
		return 0;	/* not an integer (a float, a word) */
	is64 = *s == 'L';
	while (*s == 'L')
		s++;
	limit = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)
	    LLONG_MAX;
	if (hex && !neg)
		limit = ULLONG_MAX;	/* hex is taken as its bits */
	if (u > limit)
		*overflow = true;
	if (!*overflow)
		*v = neg ? (long long)(0 - u) : (long long)u;
	*wraps = *overflow || (!is64 && (*v < INT_MIN || *v > INT_MAX));
	return (size_t)(s - p);
}

int
diag_integer(struct loader *ld, const config_setting_t *s, long long *out,
    char *text, size_t size)
{
	const char *name = config_setting_name(s);
	const char *file = config_setting_source_file(s);
	char line[1024];
	const char *p;
	size_t len = name != NULL ? strlen(name) : 0;

	*out = config_setting_get_int64(s);
	if (len == 0 || !line_text(diag_text_of(ld, file ? file : ld->path),
	    config_setting_source_line(s), line, sizeof line))
		return -ENOENT;
	/*
	 * The first "name = literal" on the line that libconfig may have
	 * read as the value it has, preferring one it kept exactly. Two
	 * settings of one name on one line could be told apart only by
	 * column, which libconfig does not keep.
	 */
	for (int pass = 0; pass < 2; pass++) {
		for (p = line; (p = strstr(p, name)) != NULL; p += len) {
			const char *q = p + len;
			bool overflow, wraps;
			long long v = 0;
			size_t n;

			if (p > line && (isalnum((unsigned char)p[-1]) ||
			    p[-1] == '_' || p[-1] == '-' || p[-1] == '*'))
				continue;
			q += strspn(q, " \t");
			if (*q != '=' && *q != ':')
				continue;
			q++;
			q += strspn(q, " \t");
			if ((n = scan_integer(q, &v, &overflow, &wraps)) == 0)
				continue;
			if (pass == 0 && !wraps && v == *out)
				return 0;
			if (pass == 1 && wraps) {
				/* The digits as written, without L. */
				snprintf(text, size, "%.*s", (int)n, q);
				text[strcspn(text, "L")] = '\0';
				if (overflow)
					return -ERANGE;
				*out = v;
				return 0;
			}
		}
	}
	return -ENOENT;
}

/* The quoted file name of an "@include" line, into buf. */
static bool
include_name(const char *line, char *buf, size_t size)
{
	const char *p = strstr(line, "@include"), *end;

	if (p == NULL || (p = strchr(p, '"')) == NULL ||
	    (end = strchr(p + 1, '"')) == NULL)
		return false;
	snprintf(buf, size, "%.*s", (int)(end - p - 1), p + 1);
	return true;
}

/*
 * "key = word;" where word is not a boolean: libconfig's "syntax error" is
 * almost always an unquoted string. Sets key and word.
 */
static bool
unquoted_string(const char *line, char *key, size_t ksize, char *word,
    size_t wsize)
{
	const char *p = line + strspn(line, " \t"), *k = p, *w;
	size_t kn, wn;

	if (!isalpha((unsigned char)*p) && *p != '*')
		return false;
	p += strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_-*");
	kn = (size_t)(p - k);
	p += strspn(p, " \t");
	if (*p != '=' && *p != ':')
		return false;
	p++;
	p += strspn(p, " \t");
	w = p;
	if (!isalpha((unsigned char)*p) && *p != '/' && *p != '.')
		return false;
	p += strcspn(p, ";#\"");
	while (p > w && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	wn = (size_t)(p - w);
	if (wn == 0 || (wn == 4 && strncasecmp(w, "true", 4) == 0) ||
	    (wn == 5 && strncasecmp(w, "false", 5) == 0))
		return false;
	snprintf(key, ksize, "%.*s", (int)kn, k);
	snprintf(word, wsize, "%.*s", (int)wn, w);
	return true;
}

void
diag_parse_error(struct loader *ld, const config_t *lc)
{
	const char *file = config_error_file(lc) ? config_error_file(lc) :
	    ld->path;
	const char *what = config_error_text(lc);
	int line = config_error_line(lc);
	char text[1024], name[1024], key[128], word[256];
	bool have = line_text(diag_text_of(ld, file), line, text, sizeof text);

	if (have && strcmp(what, "cannot open include file") == 0 &&
	    include_name(text, name, sizeof name)) {
		FILE *f = fopen(name, "r");
		int e = f == NULL ? errno : 0;

		if (f != NULL)
			fclose(f);
		diag_add(&ld->pb, file, line, "cannot open the include file "
		    "'%s'%s%s", name, e != 0 ? ": " : "", e != 0 ?
		    strerror(e) : "");
	} else if (have && strcmp(what, "syntax error") == 0 &&
	    unquoted_string(text, key, sizeof key, word, sizeof word)) {
		diag_add(&ld->pb, file, line, "syntax error: %s: a string must "
		    "be in double quotes: %s = \"%s\";", key, key, word);
	} else if (have && strcmp(what, "syntax error") == 0) {
		diag_add(&ld->pb, file, line, "syntax error: at or just before "
		    "'%s'", text + strspn(text, " \t"));
	} else {
		diag_add(&ld->pb, file, line, "syntax error: %s", what);
	}
}
