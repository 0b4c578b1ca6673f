/**
 * Many callers' calls as one: items submitted while a flush is running (or within the same turn of
 * the event loop) go out together in the next one: one statement for many rows (sync_status, the
 * API's idempotency keys), one script call or MULTI for many requests (tenant capacity, rate-limit
 * counters). One flush runs at a time, so a lone caller waits for nothing, and under load each
 * flush carries what the previous one's round trip let pile up. Two items with one `conflictKey`
 * never share a flush (a multi-row upsert cannot touch one row twice); the later waits for the
 * next, so their order holds. Without `conflictKey` any items may share one.
 */
export interface GroupCommit<I, R> {
  /** Resolves once the flush holding `item` is done (durable), with the item's own result. */
  submit(item: I): Promise<R>;
  /** Resolves once every item submitted so far is flushed (or failed): before closing what flush uses. */
  drain(): Promise<void>;
}

interface Pending<I, R> {
  item: I;
  resolve(result: R): void;
  reject(error: unknown): void;
}

export function createGroupCommit<I, R>(options: {
  /** Writes the items; answers one result per item, in order. */
  flush(items: readonly I[]): Promise<readonly R[]>;
  conflictKey?: (item: I) => string;
  maxBatch: number;
}): GroupCommit<I, R> {
  let queue: Pending<I, R>[] = [];
  let flushing = false;
  let drained: (() => void)[] = [];

  function takeBatch(): Pending<I, R>[] {
    const batch: Pending<I, R>[] = [];
    const keys = new Set<string>();
    const rest: Pending<I, R>[] = [];
    for (const pending of queue) {
      const key = options.conflictKey?.(pending.item);
      if (batch.length < options.maxBatch && (key === undefined || !keys.has(key))) {
        if (key !== undefined) keys.add(key);
        batch.push(pending);
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
          batch.forEach((pending, index) => pending.resolve(results[index] as R));
        } catch (error) {
          for (const pending of batch) pending.reject(error);
        }
      }
    } finally {
      flushing = false;
      for (const resolve of drained) resolve();
      drained = [];
    }
  }

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        // After this turn, so the writes of callers running now share the statement.
        if (!flushing) {
          flushing = true;
          setImmediate(() => void flushAll());
        }
      });
    },
    drain() {
      if (!flushing) return Promise.resolve();
      return new Promise((resolve) => drained.push(resolve));
    },
  };
}
