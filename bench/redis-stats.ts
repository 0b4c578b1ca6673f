/**
 * What a Redis server has done so far, from INFO: calls and time per command (commandstats, the
 * commands scripts run included) and CPU seconds (cpu: used_cpu_sys + used_cpu_user). Two readings
 * around a run give what the run cost Redis, everything on that server included: benches run
 * against a Redis nothing else uses.
 */
export interface CommandStat {
  calls: number;
  usec: number;
}

export interface RedisReading {
  commands: ReadonlyMap<string, CommandStat>;
  cpuSeconds: number;
}

/** `name:value` lines of an INFO reply. */
export function infoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Anything that answers INFO as Redis writes it (an ioredis client or cluster node). */
interface InfoSource {
  info(section: string): Promise<string>;
}

export async function readRedis(redis: InfoSource): Promise<RedisReading> {
  const [commandstats, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')]);
  const commands = new Map<string, CommandStat>();
  // cmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,...
  for (const [field, value] of infoFields(commandstats)) {
    if (!field.startsWith('cmdstat_')) continue;
    const stat = Object.fromEntries(value.split(',').map((pair) => pair.split('=') as [string, string]));
    commands.set(field.slice('cmdstat_'.length), { calls: Number(stat.calls ?? 0), usec: Number(stat.usec ?? 0) });
  }
  const cpuFields = infoFields(cpu);
  const cpuSeconds = ['used_cpu_sys', 'used_cpu_user'].reduce((sum, name) => sum + Number(cpuFields.get(name) ?? 0), 0);
  return { commands, cpuSeconds };
}

/** What Redis did between two readings. */
export interface RedisWork {
  /** EVALSHA and EVAL calls: BullMQ's (and our) Lua scripts. */
  scripts: number;
  /** Every command, scripts' own included. */
  commands: number;
  cpuSeconds: number;
  perCommand: ReadonlyMap<string, CommandStat>;
}

// The readings' own commands, and a bench's reset between rows, are not the run's work.
const OF_THE_READINGS = new Set(['info', 'config|resetstat']);

export function redisWork(before: RedisReading, after: RedisReading): RedisWork {
  const perCommand = new Map<string, CommandStat>();
  for (const [name, now] of after.commands) {
    if (OF_THE_READINGS.has(name)) continue;
    const then = before.commands.get(name) ?? { calls: 0, usec: 0 };
    perCommand.set(name, { calls: now.calls - then.calls, usec: now.usec - then.usec });
  }
  const calls = (name: string) => perCommand.get(name)?.calls ?? 0;
  return {
    scripts: calls('evalsha') + calls('eval'),
    commands: [...perCommand.values()].reduce((sum, stat) => sum + stat.calls, 0),
    cpuSeconds: after.cpuSeconds - before.cpuSeconds,
    perCommand,
  };
}

export interface RedisCost {
  scriptsPerJob: number;
  commandsPerJob: number;
  cpuMsPerJob: number;
}

export function redisCostPerJob(before: RedisReading, after: RedisReading, jobs: number): RedisCost | undefined {
  if (jobs <= 0) return undefined;
  const work = redisWork(before, after);
  return { scriptsPerJob: work.scripts / jobs, commandsPerJob: work.commands / jobs, cpuMsPerJob: (1000 * work.cpuSeconds) / jobs };
}
