/*
 * fuzz-remote-cmd — what treesync-remote decides about a client's command
 * line before it touches anything: cmdline_split, rsync_allow_check and
 * beneath_relative_dest on any bytes (the input is SSH_ORIGINAL_COMMAND;
 * DIR is /srv/site). Whatever is accepted must be a receiver: "rsync"
 * "--server" first, no --sender, no -s/-K/-L/-k in a short cluster, a
 * --temp-dir only of treesync's shape, "." "." last; a destination named
 * beneath DIR never has a ".." component.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <string.h>

#include "dest/remote-proto.h"
#include "fuzz.h"
#include "remote/beneath.h"
#include "remote/cmdline.h"
#include "remote/rsync-allow.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char command[4097], why[512], rel[4096];
	RsyncRequest req;
	CmdLine cl;

	if (size >= sizeof command || memchr(data, '\0', size) != NULL)
		return 0;
	memcpy(command, data, size);
	command[size] = '\0';
	if (cmdline_split(command, &cl, NULL) != 0)
		return 0;
	FUZZ_CHECK(cl.n > 0 && cl.word[cl.n] == NULL, "'%s'", command);
	if (rsync_allow_check(cl.word, cl.n, &req, why, sizeof why) == 0) {
		FUZZ_CHECK(strcmp(req.argv[0], "rsync") == 0 &&
		    strcmp(req.argv[1], "--server") == 0 &&
		    strcmp(req.argv[req.argc - 1], ".") == 0 &&
		    strcmp(req.argv[req.argc - 2], ".") == 0 &&
		    req.argv[req.argc] == NULL, "'%s'", command);
		for (size_t i = 2; i + 2 < req.argc; i++) {
			const char *w = req.argv[i];

			FUZZ_CHECK(strcmp(w, "--sender") != 0, "'%s'", command);
			if (w[0] == '-' && w[1] != '-' && w[1] != '@') {
				const char *e = strchr(w, 'e');
				size_t n = e ? (size_t)(e - w) : strlen(w);

				FUZZ_CHECK(strcspn(w, "sKLkb") >= n, "'%s'",
				    command);
			}
		}
		FUZZ_CHECK(req.temp_dir == NULL ||
		    remote_proto_is_temp_name(req.temp_dir, NULL, NULL),
		    "'%s'", command);
		if (beneath_relative_dest("/srv/site", req.dest, rel,
		    sizeof rel) == 0)
			FUZZ_CHECK(remote_proto_valid_path(rel, strlen(rel)) ||
			    rel[0] == '\0', "dest '%s' -> '%s'", req.dest, rel);
		rsync_request_free(&req);
	}
	cmdline_free(&cl);
	return 0;
}
