import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
// node itself (the pinned one) with tsx as a loader, so the child's pid is the process doing the
// work: the tsx CLI would add a parent that a SIGKILL leaves the real worker running behind.
export const NODE = resolve(REPO_ROOT, 'node_modules/.bin/node');

export interface RunningProcess {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs a TypeScript entry point of this repo as a real child process with only the given env (and `args`). */
export function startEntryPoint(entry: string, env: Record<string, string>, args: readonly string[] = []): RunningProcess {
  return startNode(['--import', 'tsx', resolve(REPO_ROOT, entry), ...args], env);
}

/** Runs the pinned node with `args` (a script and its arguments) as a real child process with only the given env. */
export function startNode(args: readonly string[], env: Record<string, string>): RunningProcess {
  const child = spawn(NODE, args, {
    cwd: REPO_ROOT,
    // Only what is given: nothing leaks in from the test runner's environment.
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  return {
    child,
    output: () => output,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  // A function is asked at the timeout: for what only then is worth saying (a child's output so far).
  options: { timeoutMs: number; what: string | (() => string); intervalMs?: number },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      const what = typeof options.what === 'function' ? options.what() : options.what;
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}
