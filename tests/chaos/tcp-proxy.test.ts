import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { waitFor } from '../support/processes';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

/** A client connection through the proxy that collects what it receives and how it ended. */
async function dial(port: number) {
  const socket = connect({ host: '127.0.0.1', port });
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => (received += text));
  const ended = new Promise<string>((resolve) => {
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    socket.once('close', () => resolve('closed'));
  });
  // A refused connection may be reset before 'connect' is seen: either way the dial is over.
  await Promise.race([once(socket, 'connect').catch(() => undefined), ended]);
  return {
    socket,
    received: () => received,
    ended,
    async roundTrip(text: string): Promise<number> {
      const started = Date.now();
      const before = received.length;
      socket.write(text);
      while (received.length < before + text.length) await new Promise((r) => setTimeout(r, 5));
      return Date.now() - started;
    },
  };
}

describe('tcp fault proxy', () => {
  let echo: Server;
  let proxy: TcpProxy;
  const clients: Socket[] = [];
  beforeAll(async () => {
    echo = createServer((socket) => {
      // The proxy resets its upstream side too: that is expected here.
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    proxy = await startTcpProxy({ targetPort: (echo.address() as AddressInfo).port });
  });
  afterAll(async () => {
    for (const socket of clients) socket.destroy();
    await proxy.close();
    echo.close();
  });
  const track = async (port: number) => {
    const client = await dial(port);
    clients.push(client.socket);
    return client;
  };

  it('pipes bytes both ways, in order, and adds the configured latency each way', async () => {
    const client = await track(proxy.port);
    expect(await client.roundTrip('hello')).toBeLessThan(100);
    proxy.setLatency(150);
    const slow = await client.roundTrip('slow');
    proxy.setLatency(0);
    // Sent right after a slow chunk: may not overtake it.
    client.socket.write('a');
    client.socket.write('b');
    await client.roundTrip('c');
    expect(slow).toBeGreaterThanOrEqual(290);
    expect(client.received()).toBe('helloslowabc');
  });

  it('resets every open connection on resetAll (the client sees ECONNRESET) and accepts new ones after', async () => {
    const first = await track(proxy.port);
    const second = await track(proxy.port);
    await first.roundTrip('x');
    proxy.resetAll();
    expect(await first.ended).toBe('ECONNRESET');
    expect(await second.ended).toBe('ECONNRESET');
    // Every connection, the earlier test's too; the proxy's own sockets close a moment later.
    await waitFor(() => proxy.openConnections() === 0, { timeoutMs: 2000, what: 'the proxy to drop its sockets' });
    const third = await track(proxy.port);
    expect(await third.roundTrip('again')).toBeLessThan(100);
  });

  it('while refusing, closes each new connection at once; healed, serves again', async () => {
    proxy.setRefusing(true);
    const refused = await track(proxy.port);
    expect(await refused.ended).toMatch(/ECONNRESET|closed/);
    expect(refused.received()).toBe('');
    proxy.setRefusing(false);
    const healed = await track(proxy.port);
    await healed.roundTrip('ok');
    expect(healed.received()).toBe('ok');
  });

  it('resets the client when the target itself refuses', async () => {
    const nowhere = createServer();
    nowhere.listen(0, '127.0.0.1');
    await once(nowhere, 'listening');
    const port = (nowhere.address() as AddressInfo).port;
    await new Promise((r) => nowhere.close(r));
    const orphan = await startTcpProxy({ targetPort: port });
    try {
      const client = await track(orphan.port);
      expect(await client.ended).toMatch(/ECONNRESET|closed/);
    } finally {
      await orphan.close();
    }
  });
});
