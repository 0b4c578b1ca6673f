import { LRUCache } from 'lru-cache';

/**
 * Per-tenant connections (credentials, allowed calendars) read from Postgres on first use and kept
 * for `ttlMs`, so a rotated or removed connection takes effect within that time. Bounded: idle
 * tenants cost nothing. `load` answers undefined for "the tenant has none", which is cached too.
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
      const found = await cache.fetch(key);
      return found === undefined || 'none' in found ? undefined : (found as V);
    },
  };
}
