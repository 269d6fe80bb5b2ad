/*
 * wake.c — waking the scans that wait for callbacks.
 *
 * A small shared array of waiter slots, each the latch of a backend that waits for
 * callbacks.  The listener calls ts_wake_all() after each stored callback: it bumps a
 * generation counter and sets every registered latch.  A slot left behind by a backend
 * that died without unregistering is harmless (PGPROC latches live in shared memory)
 * and is reclaimed once its latch has another owner.
 *
 * Without shared_preload_libraries there is no shared memory: everything here is a
 * no-op and waiters poll the spool instead.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "thingspace_fdw.h"

typedef struct TsWaiter
{
	int			pid;			/* 0 = free */
	Latch	   *latch;
} TsWaiter;

typedef struct TsWakeShared
{
	pg_atomic_uint64 generation;
	slock_t		mutex;			/* protects slots[] */
	int			nslots;
	TsWaiter	slots[FLEXIBLE_ARRAY_MEMBER];
} TsWakeShared;

static TsWakeShared *ts_wake = NULL;
static int	ts_wake_slot = -1;	/* this backend's slot, -1 when none */

/*
 * One slot per process that could wait: client backends and background workers.
 * Computed from GUCs that are final when _PG_init runs, so the size asked for and
 * the size initialised agree on every supported version.
 */
static int
ts_wake_nslots(void)
{
	return MaxConnections + max_worker_processes + 1;
}

Size
ts_wake_shmem_size(void)
{
	return add_size(offsetof(TsWakeShared, slots),
					mul_size(ts_wake_nslots(), sizeof(TsWaiter)));
}

void
ts_wake_shmem_init(void)
{
	bool		found;

	ts_wake = ShmemInitStruct("thingspace_fdw wake", ts_wake_shmem_size(), &found);
	if (!found)
	{
		pg_atomic_init_u64(&ts_wake->generation, 0);
		SpinLockInit(&ts_wake->mutex);
		ts_wake->nslots = ts_wake_nslots();
		memset(ts_wake->slots, 0, sizeof(TsWaiter) * ts_wake->nslots);
	}
}

/* A slot is stale when its backend is gone: the latch now has another owner (or none). */
static inline bool
ts_wake_slot_free(const TsWaiter *w)
{
	return w->pid == 0 || w->latch->owner_pid != w->pid;
}

void
ts_wake_register(void)
{
	int			i;

	if (ts_wake == NULL || MyProc == NULL)
		return;
	if (ts_wake_slot >= 0)
	{
		/* Still ours?  (A crash-restart reinitialises shared memory.) */
		TsWaiter   *w = &ts_wake->slots[ts_wake_slot];

		if (w->pid == MyProcPid && w->latch == &MyProc->procLatch)
			return;
		ts_wake_slot = -1;
	}

	SpinLockAcquire(&ts_wake->mutex);
	for (i = 0; i < ts_wake->nslots; i++)
	{
		TsWaiter   *w = &ts_wake->slots[i];

		if (ts_wake_slot_free(w))
		{
			w->pid = MyProcPid;
			w->latch = &MyProc->procLatch;
			ts_wake_slot = i;
			break;
		}
	}
	SpinLockRelease(&ts_wake->mutex);

	if (ts_wake_slot < 0)
		elog(DEBUG1, "thingspace_fdw: no free wake slot, callbacks will be polled");
}

void
ts_wake_unregister(void)
{
	if (ts_wake == NULL || ts_wake_slot < 0)
		return;
	SpinLockAcquire(&ts_wake->mutex);
	if (ts_wake->slots[ts_wake_slot].pid == MyProcPid)
	{
		ts_wake->slots[ts_wake_slot].pid = 0;
		ts_wake->slots[ts_wake_slot].latch = NULL;
	}
	SpinLockRelease(&ts_wake->mutex);
	ts_wake_slot = -1;
}

bool
ts_wake_registered(void)
{
	return ts_wake != NULL && ts_wake_slot >= 0;
}

uint64
ts_wake_generation(void)
{
	return ts_wake ? pg_atomic_read_u64(&ts_wake->generation) : 0;
}

void
ts_wake_all(void)
{
	Latch	   *latches[64];
	int			i = 0;

	if (ts_wake == NULL)
		return;

	/* Full barrier: whoever sees the new generation also sees the spool file. */
	pg_atomic_fetch_add_u64(&ts_wake->generation, 1);

	/* SetLatch may signal: never under the spinlock, so copy a batch at a time. */
	while (i < ts_wake->nslots)
	{
		int			n = 0;

		SpinLockAcquire(&ts_wake->mutex);
		for (; i < ts_wake->nslots && n < lengthof(latches); i++)
			if (ts_wake->slots[i].pid != 0)
				latches[n++] = ts_wake->slots[i].latch;
		SpinLockRelease(&ts_wake->mutex);

		while (n > 0)
			SetLatch(latches[--n]);
	}
}
