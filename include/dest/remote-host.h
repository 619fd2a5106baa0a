/*
 * remote-host — the one ssh connection per remote host that every remote
 * destination on that host shares, and the host's ops sessions over it.
 *
 * CONNECTION. A host is up while its ssh master (remote-rsync.h's
 * REMOTE_SSH_MASTER: our child, ControlMaster on a socket beside the
 * control socket) runs; every ops session and rsync run of every
 * destination on it goes through that socket as a client. The master is
 * started when a destination wants the host; when it exits (the link
 * went, the keep-alives ran out, the key was refused) or a client saw the
 * connection fail (remote_host_failed), the host is away: it is tried
 * again after a backoff of 1 s doubling to 5 min, with +-20 % jitter, and
 * every listener hears each change. A changed host key is logged once, as
 * one line naming known_hosts.
 *
 * OPS SESSION. `treesync-remote [--root-id=D:I] ops ROOT` over the
 * master: requests are pipelined, answers come back in order (see
 * dest/remote-proto.h) and each calls its callback; a request not
 * answered within a few times the host's timeout ends the session.
 *
 * Ownership: remote_host_get/put count references (the last put stops
 * the master); a RemoteSession is its creator's. Reactor thread only.
 */
#ifndef TREESYNC_REMOTE_HOST_H
#define TREESYNC_REMOTE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dest/remote-proto.h"
#include "dest/remote-rsync.h"
#include "engine/pair.h"

struct event_base;
typedef struct RemoteHost RemoteHost;

typedef enum RemoteHostState {
	REMOTE_HOST_DOWN = 0,	/* nobody asked yet */
	REMOTE_HOST_CONNECTING,
	REMOTE_HOST_UP,
	REMOTE_HOST_AWAY,	/* failed; tried again at retry time */
} RemoteHostState;

/* A listener: embedded in its owner, told of every state change. */
typedef struct RemoteHostListener {
	void (*changed)(void *arg);
	void *arg;
	struct RemoteHostListener *next;
} RemoteHostListener;

/* The host named rc->name with rc's settings (made when there is none):
 * a reference. */
RemoteHost *remote_host_get(struct event_base *base, const RemoteConfig *rc);
void remote_host_put(RemoteHost *h);
void remote_host_listen(RemoteHost *h, RemoteHostListener *l);
void remote_host_unlisten(RemoteHost *h, RemoteHostListener *l);
/* Connects now unless up, connecting, or backing off. */
void remote_host_want(RemoteHost *h);
/* A client found the connection gone (or hung): the master is ended and
 * the host is away, with backoff. */
void remote_host_failed(RemoteHost *h, RemoteFault f, const char *why);
RemoteHostState remote_host_state(const RemoteHost *h);
/* When it went away (wall clock; 0 when up) and why (or NULL). */
time_t remote_host_away_since(const RemoteHost *h);
const char *remote_host_reason(const RemoteHost *h);
RemoteFault remote_host_fault(const RemoteHost *h);
const RemoteConfig *remote_host_config(const RemoteHost *h);
/* Children of this host still running (its master). */
size_t remote_host_children(void);
/* Ends every master (shutdown); their sockets go with them. */
void remote_host_stop_all(void);

/* ---- ops sessions ------------------------------------------------------ */

typedef struct RemoteSession RemoteSession;

/* An answer: err 0 (OK) or the server's positive errno; -EHOSTDOWN when
 * the session ended before answering (line NULL then). */
typedef void (*RemoteReplyFn)(void *arg, int err, RemoteProtoLine *line);

typedef struct RemoteSessionEvents {
	void (*ready)(void *arg);	/* the greeting came */
	/* It ended: exit status, its fault and a reason for the log. */
	void (*closed)(void *arg, RemoteFault f, const char *why);
	void *arg;
} RemoteSessionEvents;

/* Starts a session on root (pinned when dev:ino is not 0:0) over h's
 * connection, which must be up. 0 or -errno. */
int remote_session_new(RemoteHost *h, const char *root, uint64_t dev,
    uint64_t ino, const RemoteSessionEvents *ev, RemoteSession **ret);
bool remote_session_ready(const RemoteSession *s);
/* Sends one request (args NUL-terminated); fn gets its answer. */
void remote_session_send(RemoteSession *s, const char *verb,
    const char *const *args, size_t nargs, RemoteReplyFn fn, void *arg);
size_t remote_session_outstanding(const RemoteSession *s);
/* Ends it: outstanding requests get -ECANCELED, closed is not called. */
void remote_session_free(RemoteSession *s);

#endif
