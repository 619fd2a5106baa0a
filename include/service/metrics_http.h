/*
 * metrics_http — the Prometheus endpoint (metrics_listen): GET /metrics
 * over HTTP, served from the reactor by libevent's own HTTP server
 * (evhttp).
 *
 * Owns the listening TCP socket, the evhttp server and its connections.
 * The body comes from the caller's render function (the daemon takes its
 * snapshot and lets metrics.c write the text exposition format), so this
 * module knows HTTP and nothing of the daemon. Answers: GET or HEAD
 * /metrics 200; another method on /metrics 405 (with Allow); any other
 * path 404; what evhttp cannot parse 400, a header block or body over the
 * limits below 413 or 400.
 *
 * Bounded, so that no client can delay syncing: at most
 * METRICS_HTTP_MAX_CONNECTIONS connections are open (past that the
 * listener stops accepting, and further clients wait in the kernel's
 * backlog, costing the daemon nothing); each gets METRICS_HTTP_TIMEOUT_S
 * of idleness and METRICS_HTTP_TIMEOUT_S from its accept (or its last
 * answer) to a complete request, however slowly it trickles bytes; a
 * request's header block and body are capped. Nothing here blocks.
 * Reactor thread only.
 */
#ifndef TREESYNC_METRICS_HTTP_H
#define TREESYNC_METRICS_HTTP_H

#include <sys/socket.h>

struct event_base;
struct evbuffer;

#define METRICS_HTTP_MAX_CONNECTIONS 16
#define METRICS_HTTP_TIMEOUT_S 10
#define METRICS_HTTP_MAX_HEADERS 8192	/* bytes: request line and headers */
#define METRICS_HTTP_MAX_BODY 1024	/* a GET has none */

typedef struct MetricsHttp MetricsHttp;

/*
 * Writes the answer to GET /metrics into out: 0, or -errno (the client
 * gets 503). Called on the reactor thread, from inside the server.
 */
typedef int (*MetricsHttpRender)(struct evbuffer *out, void *arg);

/*
 * Listens on sa (IPv4 or IPv6; an IPv6 socket takes IPv6 only) and serves
 * from base. listen is the address as the operator wrote it, for
 * metrics_http_listen. -EADDRINUSE and other -errno from socket, bind or
 * listen; -ENOMEM.
 */
int metrics_http_new(struct event_base *base, const char *listen,
    const struct sockaddr *sa, socklen_t len, MetricsHttpRender fn,
    void *arg, MetricsHttp **ret);
const char *metrics_http_listen(const MetricsHttp *m);
/* The address it listens on (a copy of sa), its length in *len. */
const struct sockaddr *metrics_http_addr(const MetricsHttp *m,
    socklen_t *len);
/* Stops listening, drops every connection, frees. NULL is fine. Not from
 * inside fn. */
void metrics_http_free(MetricsHttp *m);

#endif
