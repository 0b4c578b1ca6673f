import { randomBytes } from 'node:crypto';
import type { LockAuditEvent, LockAuditInput } from '@jobfleet/db';
import type { Logger, LockOperation, LockOperationResult, Metrics } from '@jobfleet/observability';
import type { RedisClient } from '@jobfleet/queue';
import type { LockAuditSink } from './audit-sink';
import { LockLostError, LockUnavailableError, type LockLossReason } from './errors';
import { defineLockScripts, type AcquireReply, type OwnershipReply } from './scripts';

export interface LockManagerOptions {
  /** Commands fail fast on a `producer` connection, wait through reconnects on a `worker` one. */
  redis: RedisClient;
  /**
   * Redis keys are `<keyPrefix>:<key>` and `<keyPrefix>:<key>:fence`; under Redis Cluster the
   * prefix must be hash-tagged (e.g. `{jobfleet}:locks`) so a lock and its fence share a slot.
   * The fence counter never expires (a token must never go back), so keep the set of keys bounded.
   */
  keyPrefix: string;
  /** This worker's id, written to the audit trail and into the owner token. */
  owner: string;
  audit: LockAuditSink;
  metrics: Metrics;
  logger: Logger;
  /** Lock lifetime without extension. Default 30 000 ms. */
  defaultTtlMs?: number;
}

export interface AcquireOptions {
  /** Default: the manager's `defaultTtlMs`. */
  ttlMs?: number;
  /** How long to keep retrying while another owner holds the lock. Default 0: one try. */
  waitMs?: number;
  /** Base delay between tries, jittered ±50 %. Default 50 ms. */
  retryDelayMs?: number;
  /** Renew the lock every ttl/3 while held. Default true. */
  autoExtend?: boolean;
  /** Recorded in the audit trail. */
  jobId?: string;
  tenantId?: string;
}

export interface Lock {
  key: string;
  /** Random per acquisition: only the holder of this token can extend or release the lock. */
  token: string;
  /**
   * Grows with every acquisition of the key, fleet-wide. Pass it to whatever the lock protects,
   * which should refuse a write carrying a token lower than one it has seen (a paused holder
   * whose lock expired cannot tell until it is too late).
   */
  fencingToken: number;
  acquiredAt: Date;
  /** Aborted (reason: LockLostError) when the lock is lost: stop writing under it. */
  signal: AbortSignal;
  /** Resets the ttl (default: the acquire ttl); false when the lock is no longer ours. */
  extend(ttlMs?: number): Promise<boolean>;
  /** Deletes the lock if still ours; false when it had expired (recorded as `expired`). */
  release(): Promise<boolean>;
}

export interface LockManager {
  /** The lock, or null when another owner held it for the whole `waitMs`. Rejects on Redis errors. */
  acquire(key: string, options?: AcquireOptions): Promise<Lock | null>;
  /**
   * Runs `fn` under the lock and always releases it. Throws LockUnavailableError when the lock
   * is not acquired within `waitMs`. `fn` should watch `lock.signal` and stop when it aborts.
   */
  withLock<T>(key: string, options: AcquireOptions, fn: (lock: Lock) => Promise<T>): Promise<T>;
}

const DEFAULT_RETRY_DELAY_MS = 50;

/**
 * The `lock` label of the lock metrics: the key's family, the part before the first ':'
 * (`afip` for `afip:30712345671:1:1`), so the number of series stays bounded.
 */
export function lockFamily(key: string): string {
  return key.split(':', 1)[0] ?? key;
}

/**
 * Redis locks (SET NX PX with a random owner token) with fencing tokens from a per-key INCR
 * counter. Every operation is sent to the audit sink, which never blocks the lock.
 */
export function createLockManager(options: LockManagerOptions): LockManager {
  const { redis, keyPrefix, owner, audit, metrics, logger } = options;
  const defaultTtlMs = options.defaultTtlMs ?? 30_000;
  const scripts = defineLockScripts(redis);

  function count<O extends LockOperation>(operation: O, result: LockOperationResult<O>) {
    metrics.lockOperations.inc({ operation, result });
  }

  function auditEvent(
    key: string,
    event: LockAuditEvent,
    context: { jobId?: string | undefined; tenantId?: string | undefined; fencingToken?: number; at?: Date },
    details: Record<string, unknown>,
  ) {
    const entry: LockAuditInput = { chain: key, lockKey: redisKey(key), event, owner, details, at: context.at ?? new Date() };
    if (context.jobId !== undefined) entry.jobId = context.jobId;
    if (context.tenantId !== undefined) entry.tenantId = context.tenantId;
    if (context.fencingToken !== undefined) entry.fencingToken = context.fencingToken;
    audit.record(entry);
  }

  function redisKey(key: string) {
    return `${keyPrefix}:${key}`;
  }

  async function acquire(key: string, acquireOptions: AcquireOptions = {}): Promise<Lock | null> {
    const { jobId, tenantId } = acquireOptions;
    const ttlMs = acquireOptions.ttlMs ?? defaultTtlMs;
    const retryDelayMs = acquireOptions.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    const started = Date.now();
    const deadline = started + (acquireOptions.waitMs ?? 0);
    const token = `${owner}:${randomBytes(12).toString('base64url')}`;
    // One conflict row per call, however many tries were refused, to keep the audit volume sane.
    let refusals = 0;
    let firstRefusalAt: Date | undefined;
    let holderTtlMs: number | undefined;
    const auditConflicts = (outcome: 'acquired' | 'unavailable' | 'error') => {
      if (refusals === 0) return;
      auditEvent(key, 'conflict', { jobId, tenantId, at: firstRefusalAt }, { refusals, outcome, waitedMs: Date.now() - started, holderTtlMs });
    };

    for (;;) {
      const sentAt = Date.now();
      let reply: AcquireReply;
      try {
        reply = await scripts.acquire(redisKey(key), `${redisKey(key)}:fence`, token, ttlMs);
      } catch (err) {
        count('acquire', 'error');
        auditConflicts('error');
        throw err;
      }
      if (reply.acquired) {
        count('acquire', 'acquired');
        auditConflicts('acquired');
        const context = { key, token, fencingToken: reply.fencingToken, ttlMs, jobId, tenantId };
        auditEvent(key, 'acquired', context, { ttlMs, waitedMs: sentAt - started, tries: refusals + 1 });
        // Measured from before the request: Redis started the ttl no earlier than this.
        return hold(context, sentAt + ttlMs, acquireOptions.autoExtend ?? true);
      }
      refusals += 1;
      firstRefusalAt ??= new Date();
      holderTtlMs = reply.holderTtlMs;
      metrics.lockConflicts.inc({ lock: lockFamily(key) });
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        count('acquire', 'unavailable');
        auditConflicts('unavailable');
        return null;
      }
      // Jitter keeps contenders that were refused together from retrying in lockstep.
      await sleep(Math.min(remaining, retryDelayMs * (0.5 + Math.random())));
    }
  }

  function hold(
    held: { key: string; token: string; fencingToken: number; ttlMs: number; jobId: string | undefined; tenantId: string | undefined },
    validUntil: number,
    autoExtend: boolean,
  ): Lock {
    const { key, token, fencingToken, jobId, tenantId } = held;
    const family = lockFamily(key);
    const acquiredAt = new Date();
    const controller = new AbortController();
    let ttlMs = held.ttlMs;
    let state: 'held' | 'lost' | 'released' = 'held';
    let renewTimer: NodeJS.Timeout | undefined;
    let deadlineTimer: NodeJS.Timeout | undefined;
    const context = { jobId, tenantId, fencingToken };
    const heldMs = () => Date.now() - acquiredAt.getTime();
    // Read through a call: `state` changes in callbacks while an await is pending, which TS narrowing cannot see.
    const stillHeld = () => state === 'held';

    function stopTimers() {
      clearTimeout(renewTimer);
      clearTimeout(deadlineTimer);
    }

    function arm(until: number) {
      stopTimers();
      // Whatever happens to Redis, past this instant the lock may be someone else's.
      deadlineTimer = setTimeout(() => lose('deadline'), Math.max(0, until - Date.now()));
      deadlineTimer.unref();
      if (autoExtend) {
        renewTimer = setTimeout(() => void renew(), Math.max(1, Math.floor(ttlMs / 3)));
        renewTimer.unref();
      }
    }

    function lose(reason: LockLossReason) {
      if (state !== 'held') return;
      state = 'lost';
      stopTimers();
      count('extend', 'lost');
      metrics.lockExtensions.inc({ result: 'lost' });
      metrics.lockHoldSeconds.observe({ lock: family }, heldMs() / 1000);
      auditEvent(key, 'lost', context, { reason, heldMs: heldMs() });
      logger.warn({ lock: key, fencingToken, reason, jobId }, 'lock lost; its holder must stop');
      controller.abort(new LockLostError(key, reason));
    }

    async function extend(newTtlMs: number | undefined, auto: boolean): Promise<boolean> {
      if (state !== 'held') return false;
      const ttl = newTtlMs ?? ttlMs;
      const sentAt = Date.now();
      let reply: OwnershipReply;
      try {
        reply = await scripts.extend(redisKey(key), token, ttl);
      } catch (err) {
        count('extend', 'error');
        metrics.lockExtensions.inc({ result: 'error' });
        throw err;
      }
      // Released (or lost to the deadline) while the command was in flight: nothing to report.
      if (!stillHeld()) return false;
      if (reply !== 'held') {
        lose(reply);
        return false;
      }
      ttlMs = ttl;
      count('extend', 'extended');
      metrics.lockExtensions.inc({ result: 'extended' });
      auditEvent(key, 'extended', context, { ttlMs: ttl, auto });
      arm(sentAt + ttl);
      return true;
    }

    async function renew() {
      try {
        await extend(undefined, true);
      } catch (err) {
        // Try again soon; the deadline timer declares the lock lost if Redis stays away.
        logger.warn({ err, lock: key }, 'lock auto-extend failed; retrying');
        if (state === 'held') {
          renewTimer = setTimeout(() => void renew(), Math.max(1, Math.floor(ttlMs / 10)));
          renewTimer.unref();
        }
      }
    }

    async function release(): Promise<boolean> {
      if (state === 'released') return false;
      const wasHeld = state === 'held';
      state = 'released';
      stopTimers();
      let reply: OwnershipReply;
      try {
        reply = await scripts.release(redisKey(key), token);
      } catch (err) {
        count('release', 'error');
        throw err;
      }
      if (wasHeld) metrics.lockHoldSeconds.observe({ lock: family }, heldMs() / 1000);
      if (reply === 'held') {
        count('release', 'released');
        auditEvent(key, 'released', context, { heldMs: heldMs() });
        return true;
      }
      count('release', 'expired');
      auditEvent(key, 'expired', context, { heldMs: heldMs(), reason: reply });
      return false;
    }

    arm(validUntil);
    return {
      key,
      token,
      fencingToken,
      acquiredAt,
      signal: controller.signal,
      extend: (newTtlMs) => extend(newTtlMs, false),
      release,
    };
  }

  async function withLock<T>(key: string, acquireOptions: AcquireOptions, fn: (lock: Lock) => Promise<T>): Promise<T> {
    const started = Date.now();
    const lock = await acquire(key, acquireOptions);
    if (!lock) throw new LockUnavailableError(key, Date.now() - started);
    try {
      return await fn(lock);
    } finally {
      // A failed release only leaves the lock to expire by its ttl; it must not mask fn's outcome.
      await lock.release().catch((err: unknown) => logger.warn({ err, lock: key }, 'lock release failed; it expires by its ttl'));
    }
  }

  return { acquire, withLock };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
