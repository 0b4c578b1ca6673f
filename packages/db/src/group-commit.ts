/**
 * Many callers' writes in one statement: items submitted while a flush is running (or within the
 * same turn of the event loop) go out together in the next one. One flush runs at a time, so a
 * lone caller waits for nothing, and under load each flush carries what the previous one's
 * round trip let pile up. Two items with one `conflictKey` never share a flush (a multi-row
 * upsert cannot touch one row twice); the later waits for the next, so their order holds.
 */
export interface GroupCommit<I, R> {
  /** Resolves once the flush holding `item` is done (durable), with the item's own result. */
  submit(item: I): Promise<R>;
}

interface Pending<I, R> {
  item: I;
  /** Callers waiting for this item: its own, and those of items it superseded. */
  waiters: { resolve(result: R): void; reject(error: unknown): void }[];
}

export function createGroupCommit<I, R>(options: {
  /** Writes the items; answers one result per item, in order. */
  flush(items: readonly I[]): Promise<readonly R[]>;
  conflictKey(item: I): string;
  maxBatch: number;
  /**
   * Whether `next` makes a still unwritten `queued` of the same key pointless (it writes all that
   * `queued` would, and more): `next` then takes its place, and both callers wait for `next`.
   * Default never.
   */
  supersedes?(queued: I, next: I): boolean;
}): GroupCommit<I, R> {
  let queue: Pending<I, R>[] = [];
  // The last queued (not yet flushing) item of each key: the one a later item may supersede.
  const lastQueued = new Map<string, Pending<I, R>>();
  let flushing = false;

  function takeBatch(): Pending<I, R>[] {
    const batch: Pending<I, R>[] = [];
    const keys = new Set<string>();
    const rest: Pending<I, R>[] = [];
    for (const pending of queue) {
      const key = options.conflictKey(pending.item);
      if (batch.length < options.maxBatch && !keys.has(key)) {
        keys.add(key);
        batch.push(pending);
        if (lastQueued.get(key) === pending) lastQueued.delete(key);
      } else {
        rest.push(pending);
      }
    }
    queue = rest;
    return batch;
  }

  async function flushAll(): Promise<void> {
    flushing = true;
    try {
      while (queue.length > 0) {
        const batch = takeBatch();
        try {
          const results = await options.flush(batch.map((pending) => pending.item));
          batch.forEach((pending, index) => {
            for (const waiter of pending.waiters) waiter.resolve(results[index] as R);
          });
        } catch (error) {
          for (const pending of batch) for (const waiter of pending.waiters) waiter.reject(error);
        }
      }
    } finally {
      flushing = false;
    }
  }

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        const key = options.conflictKey(item);
        const queued = lastQueued.get(key);
        if (queued && options.supersedes?.(queued.item, item)) {
          queued.item = item;
          queued.waiters.push({ resolve, reject });
          return;
        }
        const pending = { item, waiters: [{ resolve, reject }] };
        queue.push(pending);
        lastQueued.set(key, pending);
        // After this turn, so the writes of callers running now share the statement.
        if (!flushing) {
          flushing = true;
          setImmediate(() => void flushAll());
        }
      });
    },
  };
}
