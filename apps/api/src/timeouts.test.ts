import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { syncStatusRepository } from '@jobfleet/db';
import { startTestApi, type TestApi } from './testing/harness';

const REQUEST_TIMEOUT_MS = 1500;
const HEADERS_TIMEOUT_MS = 500;

interface Exchange {
  /** Everything the server wrote before it closed the connection. */
  received: string;
  /** From the first byte sent to the close. */
  elapsedMs: number;
}

/**
 * Sends `head` on a raw socket, then `drip` every 100 ms (if given) until the server closes the
 * connection. Gives up after `giveUpMs`, so a server that never cuts the client fails the test
 * instead of hanging it.
 */
function stall(port: number, head: string, { drip, giveUpMs }: { drip?: string; giveUpMs: number }): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const started = Date.now();
    let dripping: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server still held the connection after ${giveUpMs} ms`));
    }, giveUpMs);
    socket.on('connect', () => {
      socket.write(head);
      if (drip !== undefined) dripping = setInterval(() => socket.write(drip), 100);
    });
    socket.on('data', (chunk) => chunks.push(chunk));
    // A reset after the answer is still a cut-off client.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(giveUp);
      clearInterval(dripping);
      resolve({ received: Buffer.concat(chunks).toString('utf8'), elapsedMs: Date.now() - started });
    });
  });
}

describe('slow clients are cut off', () => {
  let api: TestApi;
  let port: number;
  beforeAll(async () => {
    api = await startTestApi({
      label: 'api-timeouts',
      env: { API_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS), API_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS) },
    });
    await api.app.listen({ host: '127.0.0.1', port: 0 });
    port = (api.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await api.close();
  });

  function expectTimeoutProblem(received: string) {
    const [head = '', body = ''] = received.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(head).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
    expect(JSON.parse(body)).toEqual({ type: 'about:blank', title: 'Request Timeout', status: 408, detail: 'The request did not arrive in time' });
  }

  it('a POST that declares 100 bytes and sends 1 is answered 408 within the request timeout, and nothing is enqueued', async () => {
    const before = await api.jobCount();
    const head =
      'POST /v1/jobs/calendar-sync HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
      `Authorization: Bearer ${api.keys.writer}\r\nIdempotency-Key: stalled-body\r\nContent-Length: 100\r\n\r\n{`;
    const { received, elapsedMs } = await stall(port, head, { giveUpMs: REQUEST_TIMEOUT_MS * 4 });
    expectTimeoutProblem(received);
    // Node checks its deadlines every quarter of the headers timeout here, so the cut comes soon after.
    expect(elapsedMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(elapsedMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1000);
    expect(await api.jobCount()).toBe(before);
    expect(await syncStatusRepository.get(api.testDb.database.db, 'acme', 'reservation', 'stalled-body')).toBeUndefined();
  });

  it('a client that sends its headers a line at a time, never finishing, is answered 408 at the headers timeout', async () => {
    const { received, elapsedMs } = await stall(port, 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n', {
      drip: 'X-Slow: still-coming\r\n',
      giveUpMs: REQUEST_TIMEOUT_MS * 4,
    });
    expectTimeoutProblem(received);
    // The drip keeps the socket busy, so it is the headers deadline that bites, well before the request one.
    expect(elapsedMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    expect(elapsedMs).toBeLessThan(REQUEST_TIMEOUT_MS);
  });

  it('a prompt client on the same server is served as usual', async () => {
    const answer = await fetch(`http://127.0.0.1:${port}/health/live`);
    expect(answer.status).toBe(200);
  });
});
