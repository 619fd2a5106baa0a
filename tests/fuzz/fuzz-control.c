/*
 * fuzz-control — control_parse, the control socket's request parser.
 *
 * Input: the bytes a client sends as its request line. Checked, whatever
 * the bytes: the result is 0 or -EINVAL; a refusal names its reason; a
 * line longer than CONTROL_LINE_MAX or holding a byte that is not
 * printable ASCII (but for one final "\n") is refused; an accepted request
 * has a known command, flags only where the wire format has them, a name
 * exactly for the commands that take one, and that name comes from the
 * line. And a round trip: the request written back in its canonical form
 * parses to the same request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "service/control_parse.h"
#include "fuzz.h"

static bool
takes_name(ControlCommand c)
{
	return c == CONTROL_RESYNC || c == CONTROL_PAUSE ||
	    c == CONTROL_RESUME || c == CONTROL_DIFF;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	ControlRequest req, again;
	char canon[CONTROL_LINE_MAX + 64];
	size_t body = size;
	bool printable = true;
	int r;

	memset(&req, 0xa5, sizeof req);	/* nothing may rely on a clean out */
	r = control_parse(line, size, &req);
	FUZZ_CHECK(r == 0 || r == -EINVAL, "returned %d", r);
	if (body > 0 && line[body - 1] == '\n')
		body--;
	for (size_t i = 0; i < body; i++)
		if (data[i] < 0x20 || data[i] > 0x7e)
			printable = false;
	if (r < 0) {
		FUZZ_CHECK(req.error != NULL && req.error[0] != '\0',
		    "a refusal without a reason");
		return 0;
	}
	FUZZ_CHECK(size <= CONTROL_LINE_MAX, "accepted %zu bytes", size);
	FUZZ_CHECK(printable, "accepted a byte that is not printable ASCII");
	FUZZ_CHECK(req.command >= CONTROL_STATUS &&
	    req.command <= CONTROL_DIFF, "command %d", (int)req.command);
	FUZZ_CHECK(!req.json || req.command == CONTROL_STATUS, "--json on %s",
	    control_command_name(req.command));
	FUZZ_CHECK(!req.force || req.command == CONTROL_RESYNC,
	    "--force on %s", control_command_name(req.command));
	FUZZ_CHECK(memchr(req.name, '\0', sizeof req.name) != NULL,
	    "name not terminated");
	FUZZ_CHECK((req.name[0] != '\0') == takes_name(req.command),
	    "name '%s' for %s", req.name, control_command_name(req.command));
	FUZZ_CHECK(req.name[0] == '\0' ||
	    memmem(line, body, req.name, strlen(req.name)) != NULL,
	    "name '%s' is not in the line", req.name);

	snprintf(canon, sizeof canon, "%s%s%s%s%s\n",
	    control_command_name(req.command), req.json ? " --json" : "",
	    req.force ? " --force" : "", req.name[0] ? " " : "", req.name);
	r = control_parse(canon, strlen(canon), &again);
	FUZZ_CHECK(r == 0, "canonical form '%s' refused: %s", canon,
	    again.error);
	FUZZ_CHECK(again.command == req.command && again.json == req.json &&
	    again.force == req.force && strcmp(again.name, req.name) == 0,
	    "canonical form '%s' parses differently", canon);
	return 0;
}
