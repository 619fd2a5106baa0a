/*
 * control — the control socket: a UNIX stream socket that treesyncctl
 * talks to, served by the reactor.
 *
 * Owns the listening socket (its file too: made at control_new, removed
 * by control_free while it is still ours) and the connected clients with
 * their bounded buffers. One request line per connection (parsed by
 * control_parse), answered by the handler at once or later
 * (control_answer), then the connection closes. The wire format is in
 * docs/design.md, "The control socket", and treesyncctl(1).
 *
 * Nothing here waits: clients are non-blocking bufferevents; a client
 * that has not sent its whole request CONTROL_TIMEOUT_S after it
 * connected, or not read its whole answer CONTROL_TIMEOUT_S after it was
 * ready, is dropped; past CONTROL_MAX_CLIENTS the client that has waited
 * longest without a request makes room for the new one.
 * Reactor thread only.
 */
#ifndef TREESYNC_CONTROL_H
#define TREESYNC_CONTROL_H

#include <sys/types.h>

#include "service/control_parse.h"

struct event_base;
struct evbuffer;

#define CONTROL_MAX_CLIENTS 32
#define CONTROL_TIMEOUT_S 10
#define CONTROL_TIMEOUT_TEXT "10 s"
#define CONTROL_REPLY_MAX (16u << 20)	/* an answer larger is refused */

#define CONTROL_LATER 1	/* a handler's "the answer comes later" */

typedef struct Control Control;
/* One connected client; owned by its Control. */
typedef struct ControlClient ControlClient;

/*
 * Answers one request: writes the body into out and returns 0 (the
 * answer is "OK") or -1 (it is "ERR": the body says why, one line or
 * more); or returns CONTROL_LATER and answers later with control_answer
 * on cl (exactly once, and before the Control is freed: control_free
 * frees its clients). Runs on the reactor thread, inside the control's
 * callbacks; it may call control_stop on this Control, not control_free.
 */
typedef int (*ControlHandler)(const ControlRequest *req, ControlClient *cl,
    struct evbuffer *out, void *arg);

/* The answer to a request whose handler returned CONTROL_LATER. */
void control_answer(ControlClient *cl, int ok, struct evbuffer *body);
/*
 * gone(arg) is called once if the client is freed while its answer is
 * still owed (control_free at shutdown, or a reload that stops the
 * socket): the handler must not answer it after that. NULL: nobody.
 */
void control_on_gone(ControlClient *cl, void (*gone)(void *arg), void *arg);

/*
 * Makes the socket at path (absolute): the parent directory is made (0755)
 * when missing; a stale socket file (nobody answers: ECONNREFUSED) is
 * replaced; the socket is mode 0660. -EADDRINUSE: a daemon answers on
 * path; -EEXIST: path exists and is not a socket; other -errno from
 * mkdir, socket, bind or listen.
 */
int control_new(struct event_base *base, const char *path, ControlHandler fn,
    void *arg, Control **ret);
const char *control_path(const Control *c);
/* Clients connected (a stopped Control may still have some). */
size_t control_clients(const Control *c);
/*
 * Gives the socket file the group gid (it stays mode 0660: root and that
 * group may connect; control_socket_group). -ESTALE: the file at the path
 * is no longer the one we made; other -errno from open or fchownat.
 */
int control_set_group(Control *c, gid_t gid);
/*
 * Stops listening and removes the socket file if it is still the one we
 * made; connected clients still get their answers. NULL is fine.
 */
void control_stop(Control *c);
/* control_stop, then drops every client and frees. NULL is fine. */
void control_free(Control *c);

#endif
