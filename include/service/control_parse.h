/*
 * control_parse — one request line of the control socket turned into a
 * ControlRequest. Pure: no I/O, no allocation, no global state, so a
 * fuzzer can drive it with any bytes.
 *
 * The wire format (docs/design.md, "The control socket"): one line
 *   status [--json] | resync [--force] NAME | pause NAME | resume NAME |
 *   reload | metrics | diff NAME
 * words separated by spaces, optionally ended by "\n"; at most
 * CONTROL_LINE_MAX bytes. Any thread.
 */
#ifndef TREESYNC_CONTROL_PARSE_H
#define TREESYNC_CONTROL_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define CONTROL_LINE_MAX 1024	/* a request, "\n" included */
#define CONTROL_NAME_MAX 255	/* a sync pair's name */

typedef enum ControlCommand {
	CONTROL_STATUS,
	CONTROL_RESYNC,
	CONTROL_PAUSE,
	CONTROL_RESUME,
	CONTROL_RELOAD,
	CONTROL_METRICS,
	CONTROL_DIFF,		/* a dry-run compare of one pair */
} ControlCommand;

typedef struct ControlRequest {
	ControlCommand command;
	bool json;		/* status --json */
	bool force;		/* resync --force */
	char name[CONTROL_NAME_MAX + 1];	/* the pair, "" when none */
	const char *error;	/* static text when parsing failed */
} ControlRequest;

/*
 * Parses line[0..len) (need not be NUL-terminated; one trailing "\n" is
 * allowed). Returns 0, or -EINVAL with out->error saying what is wrong
 * (empty, too long, a byte that is not printable ASCII, unknown command,
 * unknown option, missing or extra argument, a name with characters a
 * pair name cannot have).
 */
int control_parse(const char *line, size_t len, ControlRequest *out);

/* The command's word as on the wire ("status", ...). */
const char *control_command_name(ControlCommand c);

#endif
