/*
 * cmdline — see include/remote/cmdline.h.
 *
 * The words live in one buffer after the pointer array, so one free()
 * releases everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "remote/cmdline.h"

/* What rsync's safe_arg escapes in every argument (SHELL_CHARS), less the
 * backslash (our escape) and the blanks (our separators). */
#define REFUSED_BYTES "!#$&;|<>(){}\"'`\n\r"

int
cmdline_split(const char *s, CmdLine *out, size_t *bad_offset)
{
	size_t len = strlen(s), nwords = 0, i;
	char **word = NULL, *buf, *w;
	bool in_word = false;
	int r = 0;

	out->word = NULL;
	out->n = 0;
	/* First pass: count words and check every byte. */
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == ' ' || c == '\t') {
			in_word = false;
			continue;
		}
		if (!in_word)
			nwords++;
		in_word = true;
		if (c == '\\') {
			if (i + 1 == len) {
				r = -EINVAL;
				goto refuse;
			}
			i++;
		} else if (strchr(REFUSED_BYTES, c) != NULL) {
			r = -EINVAL;
			goto refuse;
		}
	}
	if (nwords == 0) {
		r = -EINVAL;
		i = 0;
		goto refuse;
	}
	word = malloc((nwords + 1) * sizeof *word + len + nwords);
	if (word == NULL)
		return -ENOMEM;
	buf = (char *)(word + nwords + 1);
	w = buf;
	in_word = false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == ' ' || c == '\t') {
			if (in_word)
				*w++ = '\0';
			in_word = false;
			continue;
		}
		if (!in_word)
			word[out->n++] = w;
		in_word = true;
		if (c == '\\')
			c = s[++i];
		*w++ = c;
	}
	if (in_word)
		*w = '\0';
	word[out->n] = NULL;
	out->word = word;
	return 0;
refuse:
	if (bad_offset != NULL)
		*bad_offset = i;
	return r;
}

void
cmdline_free(CmdLine *cl)
{
	free(cl->word);
	cl->word = NULL;
	cl->n = 0;
}
