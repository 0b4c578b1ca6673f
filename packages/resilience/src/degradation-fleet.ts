import { randomBytes } from 'node:crypto';
import type { DegradationConfig } from '@jobfleet/config';
import { coerceError } from '@jobfleet/contracts';
import { oldestWaitingJobAgeMs, parseInfoMemory, withDeadline, type Logger, type Metrics } from '@jobfleet/observability';
import type { Queue } from 'bullmq';
import { Cluster, type Redis } from 'ioredis';
import { levelRank, nextDegradationState, type DegradationCondition, type DegradationLevel, type DegradationSignals, type DegradationState } from './degradation-level';
import { readDegradedDependencies } from './fleet-view';

type RedisClient = Redis | Cluster;

/**
 * The level as every process sees it. One process of the fleet at a time (whoever holds the lease
 * in Redis, API or worker; another takes over within a lease time when it dies) measures the
 * signals, computes the next state and stores it; every process reads the stored state each
 * interval and acts on it. Polling, not pub/sub: the level moves at most once per interval
 * anyway, and a GET per interval costs less than a subscriber connection per process. While
 * Redis cannot be read, a process keeps acting on the last level it read.
 */
export interface DegradationView {
  current(): DegradationSnapshot;
  /** Called with each new level this process adopts. */
  onChange(listener: (snapshot: DegradationSnapshot) => void): void;
}

export interface DegradationSnapshot {
  level: DegradationLevel;
  since: string;
  /** The conditions raised (breakerOpen, postgresDown, ...). */
  raised: readonly DegradationCondition[];
  signals: DegradationSignals | null;
}

/** Where the evaluator measures the signals. */
export interface DegradationSources {
  /** REDIS_URL's connection: the lease, the state and the breaker view live there. */
  main: RedisClient;
  /** Every Redis instance (main and the queue instances): the fullest one's memory counts. */
  instances: ReadonlyMap<string, RedisClient>;
  /** Every queue of the fleet: the oldest waiting job. */
  queues: readonly Pick<Queue, 'name' | 'getJobs'>[];
  pingPostgres(timeoutMs: number): Promise<unknown>;
}

/** One level change, as the admin audit records it (written by the evaluator that saw it). */
export interface DegradationAuditEntry {
  actor: 'system:degradation';
  action: 'degradation.transition';
  detail: { from: DegradationLevel; to: DegradationLevel; at: string; raised: DegradationCondition[]; signals: DegradationSignals };
}

export interface StartDegradationOptions {
  config: DegradationConfig;
  prefix: string;
  /** Who holds the lease: the process's id. */
  id: string;
  sources: DegradationSources;
  /** Appends transitions to the admin audit; while that fails (Postgres down) they are kept and tried again (createTransitionAudit). */
  audit: (entries: readonly DegradationAuditEntry[]) => Promise<void>;
  logger: Logger;
  metrics: Metrics;
  /** Bound on each signal read. */
  timeoutMs: number;
  /** This process runs workers: it announces itself each interval, and the live ones are the workers signal. */
  countsAsWorker: boolean;
}

export interface DegradationRunner extends DegradationView {
  /** Stops evaluating and reading; gives up the lease. */
  stop(): Promise<void>;
}

/** Hash-tagged with the prefix, like every fleet key, so a cluster keeps them on one slot. */
const degradationKeys = (prefix: string) => ({
  lease: `${prefix}:degradation:evaluator`,
  state: `${prefix}:degradation:state`,
  // Worker processes (`<id>|<started at>`), scored by when each last announced itself, and by when each shut down.
  workers: `${prefix}:degradation:workers`,
  workersLeft: `${prefix}:degradation:workers-left`,
});

/**
 * Worker processes that announced themselves within three intervals, plus those that shut down on
 * purpose within the workers window: a scale-down or a rolling deploy is not workers gone missing,
 * and by the time it leaves the window the peak it would be compared to has left it too.
 */
async function liveWorkers(redis: RedisClient, prefix: string, config: DegradationConfig, now: number): Promise<{ alive: number; established: number }> {
  const keys = degradationKeys(prefix);
  const staleAfterMs = WORKER_STALE_INTERVALS * config.intervalMs;
  const replies = await redis
    .multi()
    .zremrangebyscore(keys.workers, '-inf', String(now - staleAfterMs))
    .zremrangebyscore(keys.workersLeft, '-inf', String(now - config.workersWindowMs))
    .zrange(keys.workers, '0', '-1')
    .zcard(keys.workersLeft)
    .exec();
  const [members, left] = [replies?.[2]?.[1], replies?.[3]?.[1]];
  if (!Array.isArray(members) || typeof left !== 'number') throw new Error('no ZRANGE/ZCARD reply');
  // Established: up for longer than a dead worker stays counted.
  const established = members.filter((member) => now - Number(String(member).split('|').at(-1)) >= staleAfterMs).length;
  return { alive: members.length + left, established: established + left };
}

// A worker process that has not announced itself for this many intervals is gone.
const WORKER_STALE_INTERVALS = 3;
// Transitions waiting for Postgres beyond this many: the oldest are dropped (and logged).
const MAX_PENDING_TRANSITIONS = 1000;

/** used_memory / maxmemory (or `fallbackBytes` when maxmemory is 0) of one server; null without a limit. */
function memoryRatio(info: string, fallbackBytes: number | undefined): number | null {
  const { usedBytes, maxBytes } = parseInfoMemory(info);
  const limit = maxBytes || fallbackBytes;
  return usedBytes === undefined || limit === undefined ? null : usedBytes / limit;
}

async function fullestRedis(instances: ReadonlyMap<string, RedisClient>, fallbackBytes: number | undefined): Promise<number | null> {
  const servers = [...instances.values()].flatMap((client) => (client instanceof Cluster ? client.nodes('master') : [client]));
  const ratios = await Promise.all(servers.map(async (server) => memoryRatio(await server.info('memory'), fallbackBytes)));
  const known = ratios.filter((ratio): ratio is number => ratio !== null);
  return known.length === 0 ? null : Math.max(...known);
}

/** Age of the oldest job next in line over every queue, as queue_oldest_waiting_job_age_seconds counts it. */
async function oldestJobAge(queues: DegradationSources['queues'], now: number): Promise<number> {
  return Math.max(0, ...(await Promise.all(queues.map((queue) => oldestWaitingJobAgeMs(queue, now)))));
}

/** Every signal, each bounded; one that cannot be read is `undefined` (its condition keeps its state). */
async function readDegradationSignals(sources: DegradationSources, prefix: string, config: DegradationConfig, timeoutMs: number): Promise<DegradationSignals> {
  const bounded = <T>(work: () => Promise<T>, what: string): Promise<T | undefined> => withDeadline(work(), timeoutMs, what).catch(() => undefined);
  const now = Date.now();
  const [breakers, oldest, memory, postgres, workers] = await Promise.all([
    bounded(() => readDegradedDependencies(sources.main, prefix, now), 'breaker view'),
    bounded(() => oldestJobAge(sources.queues, now), 'oldest job'),
    bounded(() => fullestRedis(sources.instances, config.redisMemoryBytes), 'redis memory'),
    sources.pingPostgres(timeoutMs).then(
      () => true,
      () => false,
    ),
    bounded(() => liveWorkers(sources.main, prefix, config, now), 'workers'),
  ]);
  return { openBreakers: breakers && Object.keys(breakers), oldestJobAgeMs: oldest, redisMemoryRatio: memory, postgresAvailable: postgres, workers };
}

const snapshotOf = (state: DegradationState): DegradationSnapshot => ({ level: state.level, since: new Date(state.since).toISOString(), raised: state.raised, signals: state.signals });

/**
 * Transitions written in order, never blocking the evaluation: while Postgres is down they are
 * kept in memory (at most MAX_PENDING_TRANSITIONS) and written at the next interval that reaches it.
 */
function createTransitionAudit(append: StartDegradationOptions['audit'], logger: Logger, timeoutMs: number) {
  let pending: DegradationAuditEntry[] = [];
  let writing = false;
  return {
    record(transition: DegradationAuditEntry) {
      pending.push(transition);
      const dropped = pending.splice(0, Math.max(0, pending.length - MAX_PENDING_TRANSITIONS));
      if (dropped.length > 0) logger.error({ dropped }, 'degradation transitions dropped from the audit: Postgres unreachable for too long');
    },
    flush(): Promise<void> {
      if (writing || pending.length === 0) return Promise.resolve();
      writing = true;
      const batch = pending.slice();
      return withDeadline(append(batch), timeoutMs, 'degradation audit')
        .then(
          () => {
            pending = pending.filter((transition) => !batch.includes(transition));
          },
          (error: unknown) => logger.warn({ err: coerceError(error), pending: pending.length }, 'degradation transitions not audited yet; retrying next interval'),
        )
        .finally(() => {
          writing = false;
        });
    },
  };
}

function parseState(raw: string | null): DegradationState | undefined {
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw) as DegradationState;
  } catch {
    return undefined;
  }
}

export function startDegradation(options: StartDegradationOptions): DegradationRunner {
  const { config, sources, logger, timeoutMs } = options;
  // Unique per runner: two fleets of one process (tests, the standalone start) never share the lease.
  const id = `${options.id}:${randomBytes(4).toString('hex')}`;
  const keys = degradationKeys(options.prefix);
  const redis = sources.main;
  const gauge = options.metrics.fleetDegradationLevel;
  const audit = createTransitionAudit(options.audit, logger, timeoutMs);
  const listeners: ((snapshot: DegradationSnapshot) => void)[] = [];
  const workerMember = `${id}|${Date.now()}`;
  let current: DegradationSnapshot = { level: 'NORMAL', since: new Date().toISOString(), raised: [], signals: null };
  let readFailing = false;
  gauge.set(0);

  function adopt(state: DegradationState): void {
    const changed = state.level !== current.level || state.raised.join() !== current.raised.join();
    current = snapshotOf(state);
    if (!changed) return;
    gauge.set(levelRank(state.level));
    logger.warn({ level: state.level, signals: state.signals }, `degradation level is now ${state.level}`);
    for (const listener of listeners) listener(current);
  }

  /** Takes or renews the lease; true while this process is the evaluator. */
  async function holdLease(): Promise<boolean> {
    const ttl = 3 * config.intervalMs;
    if ((await redis.set(keys.lease, id, 'PX', ttl, 'NX')) === 'OK') return true;
    // Read then renew: should the lease expire in between and be taken, two processes evaluate for
    // one interval, from the same stored state and the same signals, which is harmless.
    if ((await redis.get(keys.lease)) !== id) return false;
    await redis.pexpire(keys.lease, ttl);
    return true;
  }

  async function evaluate(): Promise<DegradationState | undefined> {
    if (options.countsAsWorker) await redis.zadd(keys.workers, Date.now(), workerMember);
    const previous = parseState(await redis.get(keys.state));
    if (!(await holdLease())) return previous;
    const signals = await readDegradationSignals(sources, options.prefix, config, timeoutMs);
    const next = nextDegradationState(previous, signals, config, Date.now());
    await redis.set(keys.state, JSON.stringify(next));
    const from = previous?.level ?? 'NORMAL';
    if (next.level !== from) {
      const detail = { from, to: next.level, at: new Date(next.since).toISOString(), raised: next.raised, signals };
      audit.record({ actor: 'system:degradation', action: 'degradation.transition', detail });
    }
    return next;
  }

  async function tick(): Promise<void> {
    try {
      const state = await withDeadline(evaluate(), 4 * timeoutMs, 'degradation evaluation');
      readFailing = false;
      if (state) adopt(state);
    } catch (error) {
      // Redis unreachable: the last level read stays in force.
      if (!readFailing) logger.warn({ err: coerceError(error), level: current.level }, 'degradation level unreadable; acting on the last one read');
      readFailing = true;
    }
    await audit.flush();
  }

  let running: Promise<void> = tick();
  const timer = setInterval(() => {
    running = running.then(tick);
  }, config.intervalMs);
  timer.unref();

  return {
    current: () => current,
    onChange: (listener) => {
      listeners.push(listener);
    },
    async stop() {
      clearInterval(timer);
      await running;
      // The next process takes over at once instead of after the lease time.
      // (Read then delete: a lease taken over in between is lost for one interval at most.)
      const holder = await redis.get(keys.lease).catch(() => null);
      if (holder === id) await redis.del(keys.lease).catch(() => undefined);
      if (options.countsAsWorker) await redis.multi().zrem(keys.workers, workerMember).zadd(keys.workersLeft, Date.now(), workerMember).exec().catch(() => undefined);
    },
  };
}
