// Helpers for this package's tests only (not exported).
import { once } from 'node:events';
import type { WorkerQueueSettings } from '@jobfleet/config';
import { TEST_REDIS_URL } from '../../../tests/support/redis';
import { createRedisConnection, type RedisClient, type RedisRole } from './connection';

/** Polls `check` until it returns something other than undefined or false. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result !== undefined && result !== false) return result;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A promise the test settles by hand: stands for work that ignores its abort signal. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Short locks and stall checks, so recovery happens within a test. */
export function testSettings(overrides: Partial<WorkerQueueSettings> = {}): WorkerQueueSettings {
  return { concurrency: 2, lockDurationMs: 1000, stalledIntervalMs: 500, maxStalledCount: 2, attempts: 3, maxDependencyWaitMs: 3_600_000, ...overrides };
}

/** A connection of `role` to the test Redis, once it is ready (producers refuse commands before). */
export async function readyConnection(role: RedisRole): Promise<RedisClient> {
  const redis = createRedisConnection(TEST_REDIS_URL, role, { name: `jftest-${role}` });
  await once(redis, 'ready');
  return redis;
}

/**
 * Disconnects a client of an unreachable Redis without leaving a timer behind: ioredis disconnected
 * while it waits to reconnect keeps a 2 s stream-destroy timer (ioredis#1247), so wait for its next
 * connect attempt, when there is a socket to close.
 */
export async function disconnectUnreachable(redis: RedisClient): Promise<void> {
  if (redis.status === 'reconnecting') await once(redis, 'connecting');
  redis.disconnect();
}

/** The queue names of the built-in kinds (the registry lives in @jobfleet/kinds, which depends on this package). */
export const TEST_QUEUES = ['calendar-sync', 'afip-sync', 'backup'] as const;
export type TestQueueName = (typeof TEST_QUEUES)[number];
