import { defineLuaCommand, type RedisClient } from '@jobfleet/queue';

export type AcquireReply = { acquired: true; fencingToken: number } | { acquired: false; holderTtlMs: number };
/** What a compare-and-X script found: ours (done), gone (expired), or another owner's. */
export type OwnershipReply = 'held' | 'gone' | 'taken';

/** The lock's Redis scripts (src/commands), defined on one connection. */
export interface LockScripts {
  acquire(lockKey: string, fenceKey: string, token: string, ttlMs: number): Promise<AcquireReply>;
  extend(lockKey: string, token: string, ttlMs: number): Promise<OwnershipReply>;
  release(lockKey: string, token: string): Promise<OwnershipReply>;
}

/**
 * Defines the scripts on `redis` (ioredis sends EVALSHA, falling back to EVAL once per
 * connection). Names are namespaced so they never clash with BullMQ's on a shared connection.
 */
export function defineLockScripts(redis: RedisClient): LockScripts {
  const acquire = defineLuaCommand(redis, 'jobfleetLockAcquire', new URL('./commands/acquire-2.lua', import.meta.url));
  const extend = defineLuaCommand(redis, 'jobfleetLockExtend', new URL('./commands/extend-1.lua', import.meta.url));
  const release = defineLuaCommand(redis, 'jobfleetLockRelease', new URL('./commands/release-1.lua', import.meta.url));
  return {
    async acquire(lockKey, fenceKey, token, ttlMs) {
      const reply = await acquire(lockKey, fenceKey, token, ttlMs);
      if (!Array.isArray(reply) || typeof reply[0] !== 'number' || typeof reply[1] !== 'number') {
        throw new Error(`unexpected reply from the lock acquire script: ${JSON.stringify(reply)}`);
      }
      return reply[0] === 1 ? { acquired: true, fencingToken: reply[1] } : { acquired: false, holderTtlMs: reply[1] };
    },
    extend: async (lockKey, token, ttlMs) => ownership(await extend(lockKey, token, ttlMs)),
    release: async (lockKey, token) => ownership(await release(lockKey, token)),
  };
}

function ownership(reply: unknown): OwnershipReply {
  switch (reply) {
    case 1:
      return 'held';
    case 0:
      return 'gone';
    case -1:
      return 'taken';
    default:
      throw new Error(`unexpected reply from a lock script: ${JSON.stringify(reply)}`);
  }
}
