import { z } from 'zod';

/**
 * Where the fleet's Redis lives: REDIS_URL (the main instance: fleet-wide state and every queue
 * not placed elsewhere) and REDIS_QUEUE_URLS (queues on instances of their own). Each is one
 * server (`redis://`, `rediss://`) or a Redis Cluster (`redis-cluster://`, `rediss-cluster://`
 * with comma-separated seed nodes).
 */

export interface RedisNode {
  host: string;
  port: number;
}

export type RedisTarget =
  | { mode: 'single'; url: string }
  | { mode: 'cluster'; nodes: readonly RedisNode[]; username: string | undefined; password: string | undefined; tls: boolean };

/** A Redis beside the main one and the queues it holds; `name` labels it in health checks and metrics. */
export interface QueueRedisInstance {
  /** The queues it holds, joined by '+' (no address: /health/ready is unauthenticated). */
  name: string;
  target: RedisTarget;
  queues: readonly string[];
}

export interface RedisConfig {
  /** REDIS_URL as given; undefined: `npm start` finds or starts a local Redis. */
  url: string | undefined;
  main: RedisTarget | undefined;
  /** Prefix of every key of ours and BullMQ's. */
  prefix: string;
  queueInstances: readonly QueueRedisInstance[];
}

const CLUSTER_SCHEMES: Readonly<Record<string, boolean>> = { 'redis-cluster:': false, 'rediss-cluster:': true };
const SINGLE_SCHEMES = new Set(['redis:', 'rediss:']);

/** Parses one Redis URL; throws an Error saying what is wrong (never echoing a password). */
export function parseRedisTarget(raw: string): RedisTarget {
  const scheme = /^[a-z-]+:/i.exec(raw)?.[0].toLowerCase() ?? '';
  if (SINGLE_SCHEMES.has(scheme)) {
    if (!URL.canParse(raw) || new URL(raw).hostname === '') throw new Error('not a valid redis:// URL');
    return { mode: 'single', url: raw };
  }
  const tls = CLUSTER_SCHEMES[scheme];
  if (tls === undefined) throw new Error('must start with redis://, rediss://, redis-cluster:// or rediss-cluster://');
  // redis-cluster://[user:password@]host:port,host:port[/]: the nodes are seeds, ioredis discovers the rest.
  const rest = raw.slice(scheme.length + 2).replace(/\/$/, '');
  const at = rest.lastIndexOf('@');
  const credentials = at < 0 ? undefined : new URL(`redis://${rest.slice(0, at)}@x`);
  const nodes = (at < 0 ? rest : rest.slice(at + 1)).split(',').map((node) => {
    const url = URL.canParse(`redis://${node}`) ? new URL(`redis://${node}`) : undefined;
    if (url === undefined || url.hostname === '' || url.port === '' || url.pathname !== '') throw new Error(`cluster node "${node}" is not host:port`);
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) };
  });
  const decoded = (value: string | undefined) => (value ? decodeURIComponent(value) : undefined);
  return { mode: 'cluster', nodes, username: decoded(credentials?.username), password: decoded(credentials?.password), tls };
}

/**
 * Whether every key under `prefix` hashes to one Redis Cluster slot: Redis hashes only the part
 * between the first '{' and the next '}', when that part is not empty.
 */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  return open >= 0 && prefix.indexOf('}', open + 1) > open + 1;
}

const redisUrl = z.string().transform((raw, ctx): RedisTarget => {
  try {
    return parseRedisTarget(raw.trim());
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** The same Redis whatever the spelling of its URL: what decides whether two queues share an instance. */
function targetKey(target: RedisTarget): string {
  if (target.mode === 'single') return new URL(target.url).href;
  return JSON.stringify(target);
}

export function parseRedisConfig(
  env: { REDIS_URL: string | undefined; QUEUE_PREFIX: string; REDIS_QUEUE_URLS: string | undefined },
  knownQueues: readonly string[],
  issues: string[],
): RedisConfig {
  const named = (variable: string) => (issue: z.core.$ZodIssue) => `${[variable, ...issue.path].join('.')}: ${issue.message}`;
  let main: RedisTarget | undefined;
  if (env.REDIS_URL !== undefined) {
    const parsed = redisUrl.safeParse(env.REDIS_URL);
    if (parsed.success) main = parsed.data;
    else issues.push(...parsed.error.issues.map(named('REDIS_URL')));
  }

  const byQueue: [string, RedisTarget][] = [];
  if (env.REDIS_QUEUE_URLS !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(env.REDIS_QUEUE_URLS);
    } catch {
      issues.push('REDIS_QUEUE_URLS: not valid JSON (a JSON object of queue name to Redis URL)');
    }
    const parsed = raw === undefined ? undefined : z.record(z.string(), redisUrl).safeParse(raw);
    if (parsed?.success) {
      for (const [queue, target] of Object.entries(parsed.data)) {
        if (knownQueues.includes(queue)) byQueue.push([queue, target]);
        else issues.push(`REDIS_QUEUE_URLS.${queue}: not a queue (known: ${knownQueues.join(', ')})`);
      }
    } else if (parsed !== undefined) {
      issues.push(...parsed.error.issues.map(named('REDIS_QUEUE_URLS')));
    }
    // `npm start` runs one embedded Redis; spreading queues needs a main instance to spread from.
    if (env.REDIS_URL === undefined) issues.push('REDIS_QUEUE_URLS: needs REDIS_URL (the queues not listed, and the fleet-wide state, live there)');
  }

  const mainKey = main === undefined ? undefined : targetKey(main);
  const instances = new Map<string, { target: RedisTarget; queues: string[] }>();
  for (const [queue, target] of byQueue) {
    const key = targetKey(target);
    if (key === mainKey) continue;
    const instance = instances.get(key) ?? { target, queues: [] };
    instance.queues.push(queue);
    instances.set(key, instance);
  }
  const queueInstances = [...instances.values()].map(({ target, queues }) => ({ name: queues.join('+'), target, queues }));

  const clustered = [main, ...queueInstances.map((instance) => instance.target)].some((target) => target?.mode === 'cluster');
  if (clustered && !hasHashTag(env.QUEUE_PREFIX)) {
    issues.push(
      `QUEUE_PREFIX: "${env.QUEUE_PREFIX}" has no hash tag, which Redis Cluster needs so that each queue's keys (BullMQ's scripts, our quota scripts) share one slot; use e.g. {${env.QUEUE_PREFIX}}`,
    );
  }
  return { url: env.REDIS_URL, main, prefix: env.QUEUE_PREFIX, queueInstances };
}
