/*
 * model-int — what the files of the live planner's model test share
 * (model.h): the model trees, the world of one sequence (F), the model's
 * workers and destinations. Single-threaded.
 *
 *   model-tree.c   randomness, the trees and their helpers
 *   model-dest.c   the model's workers, and the model destination behind
 *                  the seam (dest/dest.h): batches, renames, compares
 *   model.c        the driver (source changes, the kernel's events), the
 *                  check, one sequence
 */
#ifndef TREESYNC_MODEL_INT_H
#define TREESYNC_MODEL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dest/dest.h"
#include "engine/exclude.h"
#include "model.h"

#define MAXN 192		/* entries of one model tree (root included) */
#define MAXP 40			/* path length */
#define MAX_DESTS 2
#define MAX_EVENTS 512

enum { T_FILE = 1, T_DIR, T_LINK };

typedef struct Node {
	char path[MAXP];	/* "" is the root */
	int type;
	uint32_t content;	/* file data, or a symlink's target */
	uint32_t size;
	unsigned mode;
	uint64_t mtime;
	bool writing;		/* a writer has it open (no close yet) */
} Node;

typedef struct Tree {
	Node v[MAXN];
	size_t n;
} Tree;

/* A unit of work of a model destination: run at one instant by a
 * "worker", completed later on the "reactor". */
typedef struct MJob {
	struct MJob *next;
	void (*run)(struct MJob *j);
	void (*done)(struct MJob *j);
	struct ModelDest *md;
} MJob;

typedef struct ModelDest {
	Dest base;
	size_t di;		/* F.dst[di] */
	DestCapacity cap;
	size_t jobs;		/* its jobs queued, run or not */
	bool stopped;
	bool away;		/* unreachable: requests come back AWAY */
} ModelDest;

typedef struct Fs Fs;

/* One sequence's world. Global: the fakes have no other way in. */
struct Fs {
	ModelRng *rng;
	bool trace;
	Tree src;
	Tree dst[MAX_DESTS];
	size_t ndst;
	struct ModelDest *md[MAX_DESTS];
	uint64_t clock_ms;
	uint64_t tick;		/* mtimes: every change gets a new one */
	uint32_t next_content;
	uint32_t cookie;
	/* Events the "watcher" has not delivered yet. */
	struct {
		uint32_t mask, cookie;
		char path[MAXP];
		uint32_t watch;	/* the watch it makes the watcher place */
	} ev[MAX_EVENTS];
	size_t nev;
	/* Directory renames the watcher has not seen yet: its watches keep
	 * the old names, so events inside carry the old paths. */
	struct {
		char from[MAXP], to[MAXP];
		uint32_t cookie;
	} stale[16];
	size_t nstale;
	/* Directories made (or moved in) whose event the watcher has not
	 * read yet: nothing watches them, changes inside make no event. */
	struct {
		char path[MAXP];
		uint32_t id;
	} unwatched[16];
	size_t nunwatched;
	uint32_t watch_ids;
	bool lost;		/* the queue overflowed */
	/* The model's workers: jobs submitted (FIFO) and run, awaiting
	 * their completion on the "reactor" (FIFO). */
	struct MJob *queued, **queued_tail;
	struct MJob *ran, **ran_tail;
	size_t nqueued, nran;
	int threads;
	bool faults;		/* inject failures now */
	bool paused;		/* live_pause in force */
	unsigned fail_pct;	/* of a path job's steps, a rename */
	unsigned pass_fail_pct;	/* of passes (then some entries fail) */
	bool pass_failing;	/* the pass running now fails entries */
	unsigned overflow_pm;	/* per mille of deliveries */
	unsigned big_pct;	/* of files written: 3 MiB */
	unsigned resync_pm;	/* per mille of steps */
	unsigned away_pct;	/* of one step in a hundred: a remote-like
				 * destination goes away or comes back */
};

extern Fs F;
extern const Exclude *model_ex;

/* model-tree.c */
uint32_t rnd(ModelRng *r, uint32_t n);
bool chance(ModelRng *r, unsigned pct);
bool excluded_path(const char *path, bool is_dir);
void __attribute__((format(printf, 1, 2)))
trace(const char *fmt, ...);
int t_find(const Tree *t, const char *path);
Node *t_get(Tree *t, const char *path);
bool is_under(const char *path, const char *under);
void parent_of(const char *path, char *out);
void join(char *out, const char *dir, const char *name);
unsigned depth(const char *path);
Node *t_add(Tree *t, const char *path, int type);
size_t t_remove_tree(Tree *t, const char *path);
bool t_has_children(const Tree *t, const char *dir);
void t_move(Tree *t, const char *from, const char *to);
int t_parent_state(const Tree *t, const char *path);
void touch_dir(Tree *t, const char *dir);
void touch_parent(Tree *t, const char *path);

/* model-dest.c */
void worker_run_one(void);
void reactor_done_one(void);
ModelDest *model_dest_new(size_t k, const char *name, bool remote);
void toggle_away(ModelDest *md);

#endif
