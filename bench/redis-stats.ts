import type { Redis } from 'ioredis';

/**
 * What a Redis server has done so far: calls per command (INFO commandstats) and CPU seconds
 * (INFO cpu, main thread and children). Two readings around a run give what the run cost Redis,
 * everything on that server included: run benches against a Redis nothing else uses.
 */
export interface RedisReading {
  calls: ReadonlyMap<string, number>;
  cpuSeconds: number;
}

/** `name:value` lines of an INFO section. */
function infoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

export async function readRedis(redis: Redis): Promise<RedisReading> {
  const [commandstats, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')]);
  const calls = new Map<string, number>();
  // cmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,...
  for (const [field, value] of infoFields(commandstats)) {
    const count = /(?:^|,)calls=(\d+)/.exec(value)?.[1];
    if (field.startsWith('cmdstat_') && count !== undefined) calls.set(field.slice('cmdstat_'.length), Number(count));
  }
  const cpuFields = infoFields(cpu);
  const cpuSeconds = ['used_cpu_sys', 'used_cpu_user'].reduce((sum, name) => sum + Number(cpuFields.get(name) ?? 0), 0);
  return { calls, cpuSeconds };
}

export interface RedisCost {
  /** EVALSHA and EVAL calls (every BullMQ and jobfleet script) per job. */
  scriptsPerJob: number;
  /** Every command per job, INFO and the like of the readings included (a handful per run). */
  commandsPerJob: number;
  cpuMsPerJob: number;
}

export function redisCostPerJob(before: RedisReading, after: RedisReading, jobs: number): RedisCost | undefined {
  if (jobs <= 0) return undefined;
  const delta = (command: string) => (after.calls.get(command) ?? 0) - (before.calls.get(command) ?? 0);
  const allCommands = new Set([...after.calls.keys()]);
  const commands = [...allCommands].reduce((sum, command) => sum + delta(command), 0);
  return {
    scriptsPerJob: (delta('evalsha') + delta('eval')) / jobs,
    commandsPerJob: commands / jobs,
    cpuMsPerJob: (1000 * (after.cpuSeconds - before.cpuSeconds)) / jobs,
  };
}
