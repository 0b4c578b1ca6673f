import type { KindQuotas } from '@jobfleet/config';
import type { RedisClient } from './connection';
import { defineLuaCommand } from './lua-command';
import { createGroupCommit } from '@jobfleet/group-commit';

/**
 * What one tenant has in flight per job kind, kept in Redis so every API replica and worker sees
 * the same figures, and the fair order of dispatch that follows from it.
 *
 * Per (kind, tenant): a sorted set of the jobs accepted and not finished (`pending`), a sorted set
 * of running-slot leases (`running`), and a counter of jobs accepted today (UTC). Every operation
 * touches one tenant's keys only, so its cost does not grow with the number of tenants. The
 * operations of callers running at once (admissions of concurrent requests, slots of attempts
 * starting and ending) go to Redis as one script call (a group commit): under load a job costs a
 * fraction of a script call, not one per step. One call may name several tenants' keys, so on
 * Redis Cluster the prefix must be hash-tagged, as the queues' already must.
 *
 * Fairness: a job's BullMQ priority is its tenant's count of unstarted jobs at admission, so a
 * tenant's n-th waiting job competes with every other tenant's n-th (BullMQ's prioritized set
 * dispatches in O(log n), first in first out within a priority). A tenant arriving behind a
 * backlog of 5,000 starts at priority 1 and is served next, round-robin with the others.
 */

export type QuotaName = 'jobsPerDay' | 'maxWaitingJobs' | 'maxRunningJobs';

/** `counted`: this call counted the job; false when it was pending already (a retried request). */
export type Admission = { admitted: true; priority: number; counted: boolean } | { admitted: false; quota: QuotaName; limit: number; used: number };

export interface KindUsage {
  acceptedToday: number;
  waiting: number;
  running: number;
}

export interface TenantKindRef {
  kind: string;
  tenantId: string;
}

export interface TenantJobRef extends TenantKindRef {
  jobId: string;
}

export interface TenantCapacity {
  /** Counts a job against the tenant's quotas, or says which one it would exceed (nothing counted then). */
  admit(ref: TenantJobRef, quotas: KindQuotas, now?: number): Promise<Admission>;
  /**
   * `admit` for many jobs of one tenant and kind in one round trip, in order: each is judged by what
   * the ones before it left, so jobs that cross a quota are admitted up to it and refused after.
   */
  admitMany(batch: TenantKindRef, jobIds: readonly string[], quotas: KindQuotas, now?: number): Promise<Admission[]>;
  /** Takes back an admission whose request failed after it: the job was never promised. */
  withdraw(ref: TenantJobRef, now?: number): Promise<void>;
  /** `withdraw` for many jobs of one tenant and kind, in one round trip. */
  withdrawMany(batch: TenantKindRef, jobIds: readonly string[], now?: number): Promise<void>;
  /** A fleet-wide running slot until `leaseMs` from now, or how many of the tenant's jobs are ahead of this one. */
  enter(ref: TenantJobRef, maxRunningJobs: number, leaseMs: number, now?: number): Promise<{ entered: true } | { entered: false; ahead: number }>;
  /** The attempt ended: frees its slot; `finished` (completed, or failed for good) also ends its pending entry. */
  leave(ref: TenantJobRef, finished: boolean): Promise<void>;
  usage(kind: string, tenantId: string, now?: number): Promise<KindUsage>;
}

// BullMQ's highest (least urgent) priority: 2^21.
const LOWEST_PRIORITY = 2_097_152;
// The day counter outlives its day so a request at 23:59:59 still finds it; then it goes by itself.
const DAY_COUNTER_TTL_SECONDS = 2 * 86_400;

// How many of the oldest pending entries a refusal checks against the queue (see reclaimVanished).
const RECONCILE_BATCH = 20;

const QUOTA_BY_REPLY: Readonly<Record<number, QuotaName>> = { 1: 'maxWaitingJobs', 2: 'jobsPerDay' };

// Operations of one script call at most: far below what Redis takes as arguments, and a call this
// long still takes well under a millisecond.
const MAX_BATCH = 1000;

/** The operations of slots-n.lua. */
const SlotOp = { Enter: 1, Leave: 2, Finish: 3 } as const;
type SlotOp = (typeof SlotOp)[keyof typeof SlotOp];

/** YYYY-MM-DD of `now` in UTC: the day the daily quota counts in. */
export function quotaDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}

/** The next UTC midnight after `now`, when the daily quota starts again. */
export function nextQuotaDay(now: number): Date {
  const next = new Date(now);
  next.setUTCHours(24, 0, 0, 0);
  return next;
}

/** Whole seconds from `now` to nextQuotaDay (at least 1): a Retry-After. */
export function secondsUntilNextQuotaDay(now: number): number {
  return Math.max(1, Math.ceil((nextQuotaDay(now).getTime() - now) / 1000));
}

function isNumberList(reply: unknown): reply is number[] {
  return Array.isArray(reply) && reply.every((n) => typeof n === 'number');
}

function numbers(reply: unknown, what: string): number[] {
  if (!isNumberList(reply)) throw new Error(`unexpected reply from the ${what} script: ${JSON.stringify(reply)}`);
  return reply;
}

/** The replies of a pipeline's commands, in order; the first failed command's error is thrown. */
function pipelineReplies(replies: [Error | null, unknown][] | null): unknown[] {
  return (replies ?? []).map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

/**
 * One Redis's capacity scripts, and the batches that gather the calls made at once on it: the
 * admissions of every request being served (any tenants) go out as one script call, and so do the
 * slots taken and freed by every attempt starting or ending.
 */
function scriptsOn(redis: RedisClient, key: KeyOf, dayKey: DayKeyOf) {
  const admitScript = defineLuaCommand(redis, 'jobfleetTenantAdmit', new URL('./commands/admit-n.lua', import.meta.url));
  const slotsScript = defineLuaCommand(redis, 'jobfleetTenantSlots', new URL('./commands/slots-n.lua', import.meta.url));
  return {
    redis,
    withdrawScript: defineLuaCommand(redis, 'jobfleetTenantWithdraw', new URL('./commands/withdraw-2.lua', import.meta.url)),
    admit: createGroupCommit<{ ref: TenantJobRef; quotas: KindQuotas; now: number }, number[]>({
      maxBatch: MAX_BATCH,
      async flush(items) {
        const keys = items.flatMap(({ ref: { kind, tenantId }, now }) => [key(kind, tenantId, 'pending'), key(kind, tenantId, 'running'), dayKey(kind, tenantId, now)]);
        const perJob = items.flatMap(({ ref, quotas, now }) => [ref.jobId, now, quotas.maxWaitingJobs, quotas.jobsPerDay]);
        const reply = numbers(await admitScript(keys.length, ...keys, DAY_COUNTER_TTL_SECONDS, LOWEST_PRIORITY, ...perJob), 'admission');
        return items.map((_, index) => reply.slice(index * 3, index * 3 + 3));
      },
    }),
    settleSlot: createGroupCommit<{ op: SlotOp; ref: TenantJobRef; now: number; maxRunningJobs: number; leaseEnd: number }, number>({
      maxBatch: MAX_BATCH,
      async flush(items) {
        const keys = items.flatMap(({ ref: { kind, tenantId } }) => [key(kind, tenantId, 'running'), key(kind, tenantId, 'pending')]);
        const perOp = items.flatMap(({ op, ref, now, maxRunningJobs, leaseEnd }) => [op, ref.jobId, now, maxRunningJobs, leaseEnd]);
        return numbers(await slotsScript(keys.length, ...keys, ...perOp), 'running-slot');
      },
    }),
  };
}

type KeyOf = (kind: string, tenantId: string, part: string) => string;
type DayKeyOf = (kind: string, tenantId: string, now: number) => string;

/**
 * The capacity keys of `prefix` (the queues' prefix: on Redis Cluster its hash tag puts these keys
 * in the queues' slot), on `connection`: one Redis, or each kind's queue's Redis
 * (RedisConnections.forQueue), since the counters are checked against the queue's jobs. Tenant ids
 * are encoded, so no id can reach into another tenant's keys.
 */
export function createTenantCapacity(connection: RedisClient | ((kind: string) => RedisClient), prefix: string): TenantCapacity {
  const key: KeyOf = (kind, tenantId, part) => `${prefix}:tenancy:${kind}:${encodeURIComponent(tenantId)}:${part}`;
  const dayKey: DayKeyOf = (kind, tenantId, now) => key(kind, tenantId, `accepted:${quotaDay(now)}`);
  const scriptsByConnection = new Map<RedisClient, ReturnType<typeof scriptsOn>>();
  const on = (kind: string) => {
    const redis = typeof connection === 'function' ? connection(kind) : connection;
    let scripts = scriptsByConnection.get(redis);
    if (scripts === undefined) {
      scripts = scriptsOn(redis, key, dayKey);
      scriptsByConnection.set(redis, scripts);
    }
    return scripts;
  };

  /**
   * A job removed from the queue by hand (Bull Board, an operator's script) never finishes, and its
   * pending entry would hold the tenant's waiting quota forever. Before a tenant is refused for
   * that quota, its oldest entries are checked against the queue and the vanished ones dropped.
   */
  async function reclaimVanished(kind: string, tenantId: string): Promise<number> {
    const { redis } = on(kind);
    const oldest = await redis.zrange(key(kind, tenantId, 'pending'), '0', String(RECONCILE_BATCH - 1));
    if (oldest.length === 0) return 0;
    const exists = await Promise.all(oldest.map((jobId) => redis.exists(`${prefix}:${kind}:${jobId}`)));
    const vanished = oldest.filter((_, index) => exists[index] === 0);
    if (vanished.length > 0) await redis.zrem(key(kind, tenantId, 'pending'), ...vanished);
    return vanished.length;
  }

  function admissionOf([admitted = 0, detail = 0, third = 0]: readonly number[], quotas: KindQuotas): Admission {
    if (admitted === 1) return { admitted: true, priority: detail, counted: third === 1 };
    const quota = QUOTA_BY_REPLY[detail];
    if (quota === undefined) throw new Error(`unexpected reply from the admission script: ${JSON.stringify([admitted, detail, third])}`);
    return { admitted: false, quota, limit: quotas[quota], used: third };
  }

  const settleSlot = (item: { op: SlotOp; ref: TenantJobRef; now: number; maxRunningJobs: number; leaseEnd: number }) => on(item.ref.kind).settleSlot.submit(item);

  /** The admission of each of `refs`, in order: Redis runs them in one call (or a few of MAX_BATCH). */
  const tryAdmitAll = (refs: readonly TenantJobRef[], quotas: KindQuotas, now: number) =>
    Promise.all(refs.map(async (ref) => ({ ref, admission: admissionOf(await on(ref.kind).admit.submit({ ref, quotas, now }), quotas) })));

  const overWaiting = (admission: Admission) => !admission.admitted && admission.quota === 'maxWaitingJobs';

  const admitMany: TenantCapacity['admitMany'] = async ({ kind, tenantId }, jobIds, quotas, now = Date.now()) => {
    const judged = await tryAdmitAll(
      jobIds.map((jobId) => ({ kind, tenantId, jobId })),
      quotas,
      now,
    );
    // Refusals for waiting jobs first drop the vanished entries, then are judged again, in order.
    const refused = judged.filter(({ admission }) => overWaiting(admission)).map(({ ref }) => ref);
    if (refused.length > 0 && (await reclaimVanished(kind, tenantId)) > 0) {
      const again = new Map((await tryAdmitAll(refused, quotas, now)).map(({ ref, admission }) => [ref.jobId, admission]));
      return judged.map(({ ref, admission }) => again.get(ref.jobId) ?? admission);
    }
    return judged.map(({ admission }) => admission);
  };

  return {
    async admit(ref, quotas, now = Date.now()) {
      const [admission] = await admitMany(ref, [ref.jobId], quotas, now);
      if (admission === undefined) throw new Error('admitMany answered no admission for one job');
      return admission;
    },

    admitMany,

    async withdraw({ kind, tenantId, jobId }, now = Date.now()) {
      await on(kind).withdrawScript(key(kind, tenantId, 'pending'), dayKey(kind, tenantId, now), jobId);
    },

    async withdrawMany({ kind, tenantId }, jobIds, now = Date.now()) {
      if (jobIds.length === 0) return;
      const { redis, withdrawScript } = on(kind);
      const pipeline = redis.pipeline();
      for (const jobId of jobIds) withdrawScript.queueIn(pipeline, key(kind, tenantId, 'pending'), dayKey(kind, tenantId, now), jobId);
      pipelineReplies(await pipeline.exec());
    },

    async enter(ref, maxRunningJobs, leaseMs, now = Date.now()) {
      const ahead = await settleSlot({ op: SlotOp.Enter, ref, now, maxRunningJobs, leaseEnd: now + leaseMs });
      return ahead < 0 ? { entered: true } : { entered: false, ahead };
    },

    async leave(ref, finished) {
      await settleSlot({ op: finished ? SlotOp.Finish : SlotOp.Leave, ref, now: Date.now(), maxRunningJobs: 0, leaseEnd: 0 });
    },

    async usage(kind, tenantId, now = Date.now()) {
      const replies = await on(kind)
        .redis.multi()
        .get(dayKey(kind, tenantId, now))
        .zcard(key(kind, tenantId, 'pending'))
        .zcount(key(kind, tenantId, 'running'), `(${now}`, '+inf')
        .exec();
      const [accepted, pending, running] = pipelineReplies(replies).map((value) => Number(value ?? 0));
      const runningNow = running ?? 0;
      return { acceptedToday: accepted ?? 0, waiting: Math.max(0, (pending ?? 0) - runningNow), running: runningNow };
    },
  };
}
