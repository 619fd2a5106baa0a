/*
 * control_parse — see include/service/control_parse.h.
 */
#include <errno.h>
#include <string.h>

#include "service/control_parse.h"

/* Same set as config.c accepts in a sync's name. */
static bool
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool
word_is(const char *w, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(w, lit, n) == 0;
}

static int
fail(ControlRequest *out, const char *why)
{
	out->error = why;
	return -EINVAL;
}

static const struct {
	const char *word;
	ControlCommand command;
	bool takes_name;
	const char *option;	/* the one option it takes, or NULL */
} commands[] = {
	{ "status", CONTROL_STATUS, false, "--json" },
	{ "resync", CONTROL_RESYNC, true, "--force" },
	{ "pause", CONTROL_PAUSE, true, NULL },
	{ "resume", CONTROL_RESUME, true, NULL },
	{ "reload", CONTROL_RELOAD, false, NULL },
	{ "metrics", CONTROL_METRICS, false, NULL },
	{ "diff", CONTROL_DIFF, true, NULL },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

const char *
control_command_name(ControlCommand c)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (commands[i].command == c)
			return commands[i].word;
	return "?";
}

int
control_parse(const char *line, size_t len, ControlRequest *out)
{
	size_t i = 0, cmd = N_COMMANDS;
	bool have_name = false;

	memset(out, 0, sizeof *out);
	if (line == NULL)
		return fail(out, "empty request");
	if (len > CONTROL_LINE_MAX)
		return fail(out, "request too long");
	if (len > 0 && line[len - 1] == '\n')
		len--;
	for (size_t k = 0; k < len; k++)
		if (line[k] < 0x20 || line[k] > 0x7e)
			return fail(out, "request holds a byte that is not "
			    "printable ASCII");
	while (i < len) {
		size_t start, n;

		while (i < len && line[i] == ' ')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		n = i - start;
		if (cmd == N_COMMANDS) {
			for (size_t c = 0; c < N_COMMANDS; c++)
				if (word_is(line + start, n, commands[c].word))
					cmd = c;
			if (cmd == N_COMMANDS)
				return fail(out, "unknown command");
			out->command = commands[cmd].command;
			continue;
		}
		if (line[start] == '-') {
			if (commands[cmd].option == NULL ||
			    !word_is(line + start, n, commands[cmd].option))
				return fail(out, "unknown option");
			if (out->command == CONTROL_STATUS)
				out->json = true;
			else
				out->force = true;
			continue;
		}
		if (!commands[cmd].takes_name || have_name)
			return fail(out, "too many arguments");
		if (n > CONTROL_NAME_MAX)
			return fail(out, "sync name too long");
		for (size_t k = 0; k < n; k++)
			if (!name_char(line[start + k]))
				return fail(out, "a sync name holds only "
				    "letters, digits, '.', '_' and '-'");
		memcpy(out->name, line + start, n);
		out->name[n] = '\0';
		have_name = true;
	}
	if (cmd == N_COMMANDS)
		return fail(out, "empty request");
	if (commands[cmd].takes_name && !have_name)
		return fail(out, "missing the sync name");
	return 0;
}
