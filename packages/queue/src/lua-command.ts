import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

export type LuaCommand = (...args: (string | number)[]) => Promise<unknown>;

/**
 * Defines a Lua script as a command of `redis` (ioredis sends EVALSHA, falling back to EVAL once
 * per connection). `file` is a URL of `<name>-<numKeys>.lua`; the key count is read from its name.
 * Give `name` a jobfleet prefix so it never clashes with BullMQ's commands on a shared connection.
 */
export function defineLuaCommand(redis: Redis, name: string, file: URL): LuaCommand {
  const numberOfKeys = Number(/-(\d+)\.lua$/.exec(file.pathname)?.[1]);
  if (!Number.isInteger(numberOfKeys)) throw new Error(`${file.pathname}: a Lua command file is named <name>-<numKeys>.lua`);
  redis.defineCommand(name, { lua: readFileSync(file, 'utf8'), numberOfKeys });
  // defineCommand adds the method at runtime; ioredis' types cannot know about it.
  const command = (redis as unknown as Record<string, LuaCommand | undefined>)[name];
  if (!command) throw new Error(`ioredis did not define ${name}`);
  return (...args) => command.apply(redis, args);
}
