/*
 * cmdline — splits the command a client sent through ssh
 * (SSH_ORIGINAL_COMMAND) into words, the way the rsync client quotes its
 * server command line (options.c safe_arg): words are separated by spaces
 * or tabs, a backslash makes the next byte literal. No shell ever sees the
 * string, so nothing is expanded; an unescaped byte a shell would give a
 * meaning to (quotes, $, `, ;, |, &, <, >, parentheses, braces, !, #, a
 * newline) is refused rather than guessed at.
 *
 * Pure; owns nothing but the word vector it returns.
 */
#ifndef TREESYNC_REMOTE_CMDLINE_H
#define TREESYNC_REMOTE_CMDLINE_H

#include <stddef.h>

typedef struct CmdLine {
	char **word;		/* n words, NULL-terminated; one allocation */
	size_t n;
} CmdLine;

/*
 * 0, -EINVAL (empty, or an unescaped special byte: *bad_offset tells where)
 * or -ENOMEM. On success the caller frees with cmdline_free.
 */
int cmdline_split(const char *s, CmdLine *out, size_t *bad_offset);
void cmdline_free(CmdLine *cl);

#endif
