import { LRUCache } from 'lru-cache';

/**
 * Per-tenant connections (credentials, allowed calendars) read from Postgres on first use and kept
 * for `ttlMs`, so a rotated or removed connection takes effect within that time. Bounded: idle
 * tenants cost nothing. `load` answers undefined for "the tenant has none"; that answer is read
 * again before it is believed, so a connection added a moment ago (which the API already
 * checked) is never refused from a stale cache.
 */
export function createTenantCache<V extends object>(options: { ttlMs: number; max?: number; load: (key: string) => Promise<V | undefined> }) {
  const cache = new LRUCache<string, V | { none: true }>({
    max: options.max ?? 1000,
    // A TTL of 0 would mean "forever" to lru-cache; 1 ms is as good as no cache.
    ttl: Math.max(1, options.ttlMs),
    fetchMethod: async (key) => (await options.load(key)) ?? { none: true },
  });
  return {
    async get(key: string): Promise<V | undefined> {
      const status: LRUCache.Status<string, V | { none: true }> = {};
      let found = await cache.fetch(key, { status });
      // A cached "none" is checked again; one just read is the answer.
      if (found !== undefined && 'none' in found && status.fetch === 'hit') found = await cache.fetch(key, { forceRefresh: true });
      return found === undefined || 'none' in found ? undefined : (found as V);
    },
  };
}
