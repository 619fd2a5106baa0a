/*
 * mailbox — the one way results come back to the reactor from another
 * thread: a locked FIFO list of items plus one eventfd registered in the
 * reactor's event_base (STYLE.md example 5, memcached's thread.c).
 *
 * A poster appends an item under the mailbox's lock and writes the
 * eventfd only when the list goes from empty to non-empty, so a burst of
 * posts costs one wake-up. When the eventfd is readable the reactor takes
 * the whole list under the lock and calls the callback once, after
 * unlocking, with the items in the order they were posted. The lock is a
 * leaf: nothing else is taken while it is held.
 *
 * An item is a MailboxItem embedded in the caller's struct (MAILBOX_ENTRY
 * gets the struct back); the mailbox never allocates or frees items, and
 * an item belongs to whoever holds it: the poster until mailbox_post, the
 * mailbox until it is taken, then the callback (or mailbox_take's caller).
 *
 * Thread: mailbox_post from any thread; mailbox_new, mailbox_take and
 * mailbox_free on the reactor thread (the one that runs the event_base),
 * where the callback runs too.
 */
#ifndef TREESYNC_MAILBOX_H
#define TREESYNC_MAILBOX_H

#include <stddef.h>

struct event_base;

typedef struct MailboxItem {
	struct MailboxItem *next;
} MailboxItem;

#define MAILBOX_ENTRY(item, type, member) \
	((type *)(void *)((char *)(item) - offsetof(type, member)))

/* Gets every item taken in one go, oldest first, linked through next. */
typedef void (*MailboxFn)(MailboxItem *list, void *arg);

typedef struct Mailbox Mailbox;

/* Makes the eventfd and registers it in base. -errno on failure. */
int mailbox_new(struct event_base *base, MailboxFn fn, void *arg,
    Mailbox **ret);
/* Appends item; wakes the reactor when the list was empty. Any thread. */
void mailbox_post(Mailbox *mb, MailboxItem *item);
/* Takes every item now in the list (oldest first), without the callback. */
MailboxItem *mailbox_take(Mailbox *mb);
/*
 * Unregisters and frees the mailbox. Items still in it are not touched:
 * take them first (no poster may post any more). NULL is fine.
 */
void mailbox_free(Mailbox *mb);

#endif
