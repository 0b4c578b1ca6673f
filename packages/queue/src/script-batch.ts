/**
 * Calls made while one is on its way to Redis (or within the same turn of the event loop) go out
 * together as the next one: a Lua script call costs Redis about as much for one item as for many,
 * so under load each call carries what the previous one's round trip let pile up, and a lone
 * caller waits for nothing. Each caller gets its own item's reply, or the call's error.
 */
export function createScriptBatch<I, R>(options: { run(items: readonly I[]): Promise<readonly R[]>; maxBatch: number }): (item: I) => Promise<R> {
  let queue: { item: I; resolve(result: R): void; reject(error: unknown): void }[] = [];
  let running = false;

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        const batch = queue.slice(0, options.maxBatch);
        queue = queue.slice(batch.length);
        try {
          const results = await options.run(batch.map((pending) => pending.item));
          batch.forEach((pending, index) => pending.resolve(results[index] as R));
        } catch (error) {
          for (const pending of batch) pending.reject(error);
        }
      }
    } finally {
      running = false;
    }
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (!running) {
        running = true;
        // After this turn, so the calls of callers running now share the script call.
        setImmediate(() => void drain());
      }
    });
}
