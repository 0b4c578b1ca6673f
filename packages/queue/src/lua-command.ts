import { readFileSync } from 'node:fs';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './connection';

type LuaArgs = (string | number)[];

export interface LuaCommand {
  (...args: LuaArgs): Promise<unknown>;
  /** Adds a call to `pipeline`, one of the same connection's; its reply comes with the pipeline's. */
  queueIn(pipeline: ChainableCommander, ...args: LuaArgs): void;
}

/**
 * Defines a Lua script as a command of `redis` (ioredis sends EVALSHA, falling back to EVAL once
 * per connection). `file` is a URL of `<name>-<numKeys>.lua`; the key count is read from its name.
 * A script whose key count varies is `<name>-n.lua`: its caller passes the count first.
 * Give `name` a jobfleet prefix so it never clashes with BullMQ's commands on a shared connection.
 */
export function defineLuaCommand(redis: RedisClient, name: string, file: URL): LuaCommand {
  const count = /-(\d+|n)\.lua$/.exec(file.pathname)?.[1];
  if (count === undefined) throw new Error(`${file.pathname}: a Lua command file is named <name>-<numKeys>.lua or <name>-n.lua`);
  const lua = readFileSync(file, 'utf8');
  redis.defineCommand(name, count === 'n' ? { lua } : { lua, numberOfKeys: Number(count) });
  // defineCommand adds the method at runtime, to the connection and to its pipelines; ioredis'
  // types cannot know about it.
  const methodOf = (target: RedisClient | ChainableCommander) => {
    const method = (target as unknown as Record<string, ((...args: LuaArgs) => unknown) | undefined>)[name];
    if (!method) throw new Error(`ioredis did not define ${name}`);
    return method;
  };
  const command = methodOf(redis);
  return Object.assign((...args: LuaArgs) => command.apply(redis, args) as Promise<unknown>, {
    queueIn: (pipeline: ChainableCommander, ...args: LuaArgs) => void methodOf(pipeline).apply(pipeline, args),
  });
}
