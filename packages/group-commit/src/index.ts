/**
 * Many callers' calls as one: items submitted while a flush is running (or within the same turn of
 * the event loop) go out together in the next one: one statement for many rows (sync_status, the
 * API's idempotency keys), one script call or MULTI for many requests (tenant capacity, rate-limit
 * counters). At most `maxInFlight` flushes run at a time (default one), so a lone caller waits for
 * nothing, and under load each flush carries what the running ones' round trips let pile up; more
 * than one in flight trades bigger batches for less waiting when a flush is a chain of round trips.
 * Two items with one `conflictKey` never share a flush nor run in two at once (a multi-row upsert
 * cannot touch one row twice, and the later must see the earlier's effect); the later waits for
 * the next flush after the earlier's ends, so their order holds. Without `conflictKey` any items
 * may share one.
 */
export interface GroupCommit<I, R> {
  /** Resolves once the flush holding `item` is done (durable), with the item's own result. */
  submit(item: I): Promise<R>;
  /** Resolves once every item submitted so far is flushed (or failed): before closing what flush uses. */
  drain(): Promise<void>;
}

interface Pending<I, R> {
  item: I;
  key: string | undefined;
  resolve(result: R): void;
  reject(error: unknown): void;
}

export function createGroupCommit<I, R>(options: {
  /** Writes the items; answers one result per item, in order. */
  flush(items: readonly I[]): Promise<readonly R[]>;
  conflictKey?: (item: I) => string;
  maxBatch: number;
  /** How many flushes may run at once. Default 1. */
  maxInFlight?: number;
}): GroupCommit<I, R> {
  const maxInFlight = options.maxInFlight ?? 1;
  let queue: Pending<I, R>[] = [];
  let inFlight = 0;
  let scheduled = false;
  // The conflict keys of the items in running flushes.
  const busyKeys = new Set<string>();
  let drained: (() => void)[] = [];

  /** The next flush's items: in order, at most maxBatch, no key twice nor one a running flush holds. */
  function takeBatch(): Pending<I, R>[] {
    const batch: Pending<I, R>[] = [];
    const keys = new Set<string>();
    const rest: Pending<I, R>[] = [];
    for (const pending of queue) {
      const { key } = pending;
      if (batch.length < options.maxBatch && (key === undefined || (!keys.has(key) && !busyKeys.has(key)))) {
        if (key !== undefined) keys.add(key);
        batch.push(pending);
      } else {
        rest.push(pending);
      }
    }
    queue = rest;
    return batch;
  }

  async function run(batch: readonly Pending<I, R>[]): Promise<void> {
    try {
      const results = await options.flush(batch.map((pending) => pending.item));
      batch.forEach((pending, index) => pending.resolve(results[index] as R));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      for (const { key } of batch) if (key !== undefined) busyKeys.delete(key);
      inFlight -= 1;
      startFlushes();
    }
  }

  function startFlushes(): void {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = takeBatch();
      // Every item waiting conflicts with a running flush: the end of one starts the next.
      if (batch.length === 0) break;
      for (const { key } of batch) if (key !== undefined) busyKeys.add(key);
      inFlight += 1;
      void run(batch);
    }
    if (inFlight === 0 && queue.length === 0) {
      for (const resolve of drained) resolve();
      drained = [];
    }
  }

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, key: options.conflictKey?.(item), resolve, reject });
        // After this turn, so the writes of callers running now share the statement.
        if (!scheduled) {
          scheduled = true;
          setImmediate(() => {
            scheduled = false;
            startFlushes();
          });
        }
      });
    },
    drain() {
      if (inFlight === 0 && queue.length === 0 && !scheduled) return Promise.resolve();
      return new Promise((resolve) => drained.push(resolve));
    },
  };
}
