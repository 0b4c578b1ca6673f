import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

export interface TcpProxy {
  /** The proxy's own port on 127.0.0.1: point clients here instead of at the target. */
  readonly port: number;
  /** Holds every chunk, in both directions, `ms` before passing it on (order kept). 0 = none. */
  setLatency(ms: number): void;
  /** Destroys every open connection with a TCP RST: both ends see ECONNRESET. */
  resetAll(): void;
  /** While true, a new connection is reset as soon as it is accepted (a service whose port refuses). */
  setRefusing(refusing: boolean): void;
  /** Connections currently piped. */
  openConnections(): number;
  /** Connections accepted since the start, refused ones included. */
  acceptedConnections(): number;
  /** Stops listening and resets every open connection. */
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 that pipes each connection to `targetHost:targetPort` and can add
 * latency, reset connections and refuse new ones: network faults between a client and a service
 * without touching either.
 */
export async function startTcpProxy(options: { targetPort: number; targetHost?: string }): Promise<TcpProxy> {
  const targetHost = options.targetHost ?? '127.0.0.1';
  let latencyMs = 0;
  let refusing = false;
  let accepted = 0;
  const open = new Set<Socket>();

  const server = createServer((client) => {
    accepted += 1;
    if (refusing) {
      reset(client);
      return;
    }
    const upstream = connect({ host: targetHost, port: options.targetPort });
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.setNoDelay(true);
      socket.once('close', () => open.delete(socket));
    }
    relay(client, upstream, () => latencyMs);
    relay(upstream, client, () => latencyMs);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });

  const resetAll = () => {
    for (const socket of [...open]) reset(socket);
  };
  return {
    port: (server.address() as AddressInfo).port,
    setLatency(ms) {
      latencyMs = ms;
    },
    resetAll,
    setRefusing(value) {
      refusing = value;
    },
    openConnections: () => open.size / 2,
    acceptedConnections: () => accepted,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      resetAll();
      await closed;
    },
  };
}

/**
 * Copies `from` into `to`, each chunk due `latency()` ms after it arrived but never before the one
 * ahead of it, so lowering the latency mid-stream cannot reorder bytes. Either side failing or
 * closing takes the other down with it, as a real network path would.
 */
function relay(from: Socket, to: Socket, latency: () => number): void {
  const pending: { dueAt: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let lastDueAt = 0;
  let ended = false;

  const flush = () => {
    timer = undefined;
    const now = Date.now();
    while (pending[0] && pending[0].dueAt <= now) {
      const next = pending.shift();
      if (next && !to.destroyed) to.write(next.chunk);
    }
    if (pending[0]) timer = setTimeout(flush, pending[0].dueAt - now);
    else if (ended && !to.destroyed) to.end();
  };

  from.on('data', (chunk: Buffer) => {
    const dueAt = Math.max(Date.now() + latency(), lastDueAt);
    lastDueAt = dueAt;
    pending.push({ dueAt, chunk });
    if (timer === undefined) flush();
  });
  const finish = () => {
    ended = true;
    if (timer === undefined) flush();
  };
  from.once('end', finish);
  // A reset or error on one side resets the other; a clean close ends it after the held bytes.
  from.on('error', () => {
    clearTimeout(timer);
    pending.length = 0;
    reset(to);
  });
  from.once('close', (hadError) => {
    if (!hadError) finish();
  });
}

/**
 * Closes `socket` with an RST. One whose sending side was already shut down (end()) is only
 * destroyed: libuv refuses to reset it, and Node then never closes the handle (the process could
 * not exit).
 */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded || socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}
