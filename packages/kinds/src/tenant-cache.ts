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
    /**
     * The tenant's connection; a cached one that is missing or not `sufficient` for the job at
     * hand (a calendar just added to the allowlist) is read again before it is believed.
     */
    async get(key: string, sufficient: (value: V) => boolean = () => true): Promise<V | undefined> {
      const status: LRUCache.Status<string, V | { none: true }> = {};
      const cached = await cache.fetch(key, { status });
      const usable = (found: V | { none: true } | undefined): V | undefined => (found === undefined || 'none' in found ? undefined : found);
      const value = usable(cached);
      if (status.fetch !== 'hit' || (value !== undefined && sufficient(value))) return value;
      return usable(await cache.fetch(key, { forceRefresh: true }));
    },
  };
}
