/*
 * mailbox — see include/util/mailbox.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/mailbox.h"

struct Mailbox {
	pthread_mutex_t lock;
	MailboxItem *head, *tail;	/* under lock */
	int efd;
	struct event *ev;
	MailboxFn fn;
	void *arg;
};

static void
on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	Mailbox *mb = arg;
	MailboxItem *list;
	uint64_t n;

	(void)what;
	/* EAGAIN: a post's write was already consumed with an earlier take. */
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		return;
	if ((list = mailbox_take(mb)) != NULL)
		mb->fn(list, mb->arg);
}

int
mailbox_new(struct event_base *base, MailboxFn fn, void *arg, Mailbox **ret)
{
	Mailbox *mb = calloc(1, sizeof *mb);
	int r = 0;

	if (mb == NULL)
		return -ENOMEM;
	mb->efd = -1;	/* a failed eventfd must not close fd 0 */
	pthread_mutex_init(&mb->lock, NULL);
	mb->fn = fn;
	mb->arg = arg;
	if ((mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		r = -errno;
		goto out;
	}
	mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, on_eventfd,
	    mb);
	if (mb->ev == NULL || event_add(mb->ev, NULL) < 0)
		r = -ENOMEM;
out:
	if (r < 0)
		mailbox_free(mb);
	else
		*ret = mb;
	return r;
}

void
mailbox_post(Mailbox *mb, MailboxItem *item)
{
	item->next = NULL;
	pthread_mutex_lock(&mb->lock);
	if (mb->tail != NULL) {
		mb->tail->next = item;
	} else {
		uint64_t one = 1;

		mb->head = item;
		/* Cannot fail short of a bug: the counter never nears max. */
		if (write(mb->efd, &one, sizeof one) < 0)
			abort();
	}
	mb->tail = item;
	pthread_mutex_unlock(&mb->lock);
}

MailboxItem *
mailbox_take(Mailbox *mb)
{
	MailboxItem *list;

	pthread_mutex_lock(&mb->lock);
	list = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->lock);
	return list;
}

void
mailbox_free(Mailbox *mb)
{
	if (mb == NULL)
		return;
	if (mb->ev != NULL)
		event_free(mb->ev);
	if (mb->efd >= 0)
		close(mb->efd);
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}
