import { isIPv6 } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { RedisClient } from '@jobfleet/queue';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { HttpProblem } from '../problem';

export interface AuthFailureLimiterOptions {
  /** The API's producer connection: it refuses at once while Redis is down, so nothing waits on it. */
  redis: RedisClient;
  /** Prefix of the counters in Redis; the same on every replica, so they share one count per address. */
  keyPrefix: string;
  /** Failed authentications an address may make per window; the next ones answer 429. */
  limit: number;
  /** The fixed window, from an address's first failure; its block lasts until the window ends. */
  windowSeconds: number;
}

/**
 * Brute-force protection: failed authentications counted per client address across replicas, and
 * an address over the limit refused (429) on every authentication until its window passes, even
 * with a valid secret, so the limit cannot be used to tell good guesses from bad ones. Successes
 * are never counted nor reset the count: an attacker's own valid key must not wipe its failures.
 *
 * Only failures cost a Redis round trip. The block is checked against a map of this process, which
 * learns that an address is over the limit from the shared count its own failure just read; another
 * replica learns it at the address's first failure there. So a successful request gains no I/O,
 * and an attacker spread over N replicas gets at most N guesses per window past the limit checked
 * (each replica's first, answered 429 if wrong), a price worth not reading Redis on every request.
 */
export interface AuthFailureLimiter {
  /** Throws the 429 while this process knows `address` to be over the limit (no I/O). */
  assertNotBlocked(address: string): void;
  /** Counts a failed authentication from `address`; throws the 429 once that puts it over the limit. */
  recordFailure(address: string, log: FastifyBaseLogger): Promise<void>;
}

// Beyond this many blocked addresses the map starts over (their counts stay in Redis), so an
// attacker with many addresses cannot grow it without bound.
const MAX_BLOCKED_ADDRESSES = 10_000;

/**
 * The unit that is counted. An IPv6 host usually holds a whole /64, so counting single addresses
 * would give it 2^64 windows: IPv6 is counted per /64, IPv4 (and IPv4-mapped IPv6) per address.
 */
export function clientKey(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)?.[1];
  if (mapped !== undefined) return mapped;
  if (!isIPv6(address)) return address;
  const [head = '', tail] = (address.split('%')[0] ?? '').split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  // An embedded dotted IPv4 (last 32 bits) fills two groups; it lies past the /64 anyway.
  const width = (part: string[]) => part.reduce((n, group) => n + (group.includes('.') ? 2 : 1), 0);
  const left = groups(head);
  const right = groups(tail);
  const expanded = tail === undefined ? left : [...left, ...Array<string>(8 - width(left) - width(right)).fill('0'), ...right];
  return `${expanded.slice(0, 4).map((group) => parseInt(group, 16).toString(16)).join(':')}::/64`;
}

function tooManyFailures(msBeforeNext: number): HttpProblem {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return new HttpProblem(429, `Too many failed authentications from this address; retry in ${seconds} s`, {
    type: '/problems/too-many-failed-authentications',
    headers: { 'retry-after': String(seconds) },
  });
}

export function createAuthFailureLimiter(options: AuthFailureLimiterOptions): AuthFailureLimiter {
  const policy = { points: options.limit, duration: options.windowSeconds };
  const shared = new RateLimiterRedis({
    ...policy,
    storeClient: options.redis,
    keyPrefix: options.keyPrefix,
    // ioredis, not node-redis (useRedisPackage stays false); a connection that is not ready is not asked.
    rejectIfRedisNotReady: true,
  });
  // While Redis is down each process counts alone (with a warning): the limit then holds per replica,
  // at most replicas x limit fleet-wide, rather than failing fully open. Failing closed (an uncounted
  // failure taken as over the limit) would block every address at its first typo for the outage.
  // Valid keys never reach a counter, so they keep working either way.
  const local = new RateLimiterMemory(policy);
  // Address key -> when its block ends (epoch ms).
  const blocked = new Map<string, number>();

  async function consume(key: string, log: FastifyBaseLogger): Promise<void> {
    try {
      await shared.consume(key);
    } catch (error) {
      if (error instanceof RateLimiterRes) throw error;
      log.warn({ err: error }, 'failed authentications cannot be counted in Redis; counting in this process');
      await local.consume(key);
    }
  }

  return {
    assertNotBlocked(address) {
      const key = clientKey(address);
      const until = blocked.get(key);
      if (until === undefined) return;
      const remaining = until - Date.now();
      if (remaining > 0) throw tooManyFailures(remaining);
      blocked.delete(key);
    },

    async recordFailure(address, log) {
      const key = clientKey(address);
      try {
        await consume(key, log);
      } catch (error) {
        if (!(error instanceof RateLimiterRes)) throw error;
        if (blocked.size >= MAX_BLOCKED_ADDRESSES) blocked.clear();
        blocked.set(key, Date.now() + error.msBeforeNext);
        throw tooManyFailures(error.msBeforeNext);
      }
    },
  };
}
