import { Redis } from 'ioredis';
import { setTimeout as delay } from 'node:timers/promises';
import { DependencyWaitError } from '@jobfleet/contracts';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../../tests/support/redis';
import { createTestCertificate, startAfipSimulator, type AfipSimulator } from './simulator/index';
import { WsaaTicketLostError } from './errors';
import { createTicketProvider, type TicketOutcome, type TicketProviderOptions } from './ticket-provider';
import { createWsaaClient } from './wsaa';

const CUIT = 20_123_456_786;
/** Tickets are cached per tenant and CUIT. */
const ISSUER = { tenantId: 'acme', cuit: CUIT };

/**
 * An in-process stand-in for the fleet lock (one process here): callers of the same key run one
 * after the other.
 */
function createLocalLock(): TicketProviderOptions['withLock'] {
  const tails = new Map<string, Promise<unknown>>();
  return async (key, fn) => {
    const previous = tails.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(fn);
    tails.set(key, run);
    return run;
  };
}

describe('WSAA ticket provider (Redis cache + simulator)', () => {
  const credentials = createTestCertificate({ cuit: CUIT });
  let simulator: AfipSimulator;
  let redis: Redis;
  let keyPrefix: string;

  const provider = (overrides: Partial<TicketProviderOptions> = {}) =>
    createTicketProvider({
      redis,
      keyPrefix,
      wsaa: createWsaaClient({ url: simulator.wsaaUrl, timeoutMs: 5000 }),
      credentials: () => credentials,
      withLock: createLocalLock(),
      ...overrides,
    });

  beforeAll(async () => {
    simulator = await startAfipSimulator();
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  beforeEach(() => {
    keyPrefix = uniquePrefix('afip-tickets');
  });
  afterEach(async () => {
    simulator.reset();
    await deletePrefix(keyPrefix);
  });
  afterAll(async () => {
    redis.disconnect();
    await simulator.close();
  });

  it('logs in exactly once for 20 concurrent getTicket calls and gives all of them the same ticket', async () => {
    const tickets = provider();
    const results = await Promise.all(Array.from({ length: 20 }, () => tickets.getTicket(ISSUER)));
    expect(simulator.loginCount(CUIT)).toBe(1);
    expect(new Set(results.map((ticket) => ticket.token)).size).toBe(1);
  });

  it('shares the cached ticket between providers (workers) using the same Redis', async () => {
    const withLock = createLocalLock();
    const first = await provider({ withLock }).getTicket(ISSUER);
    const second = await provider({ withLock }).getTicket(ISSUER);
    expect(second).toEqual(first);
    expect(simulator.loginCount(CUIT)).toBe(1);
    expect(await redis.pttl(`${keyPrefix}:afip-wsaa:ticket:${ISSUER.tenantId}:${CUIT}:wsfe`)).toBeGreaterThan(11 * 3600_000);
  });

  it('logs in again once the cached ticket is inside the refresh margin', async () => {
    const first = await provider().getTicket(ISSUER);
    simulator.expireTickets(); // AFIP's side of the same 12 hours passing
    // A margin wider than the ticket's life puts "now" inside it, as 11 h 55 min later would.
    const later = provider({ refreshMarginSeconds: 13 * 3600 });
    const second = await later.getTicket(ISSUER);
    expect(second.token).not.toBe(first.token);
    expect(simulator.loginCount(CUIT)).toBe(2);
  });

  it('waits out a ticket AFIP holds but the fleet lost: no attempt spent, one login try per recheck, then a new ticket', async () => {
    const outcomes: TicketOutcome[] = [];
    await provider({ onTicket: (outcome) => outcomes.push(outcome) }).getTicket(ISSUER);
    await redis.del(`${keyPrefix}:afip-wsaa:ticket:${ISSUER.tenantId}:${CUIT}:wsfe`); // the cache entry is gone, AFIP's ticket is not
    const tickets = provider({ lostTicketRecheckMs: 1000, onTicket: (outcome) => outcomes.push(outcome) });

    const error = await tickets.getTicket(ISSUER).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WsaaTicketLostError);
    expect(error).toBeInstanceOf(DependencyWaitError);
    expect(error).toMatchObject({ retryable: true, code: 'AFIP_WSAA_TICKET_LOST', dependency: 'afip-wsaa', details: { cuit: CUIT, reason: 'alreadyAuthenticated' } });
    expect((error as WsaaTicketLostError).retryAfterMs).toBeLessThanOrEqual(1000);
    // The lost ticket was issued by the first login, so it expires 12 h after that login started.
    expect((error as WsaaTicketLostError).expiresBy.getTime()).toBeLessThanOrEqual(Date.now() + 12 * 3600_000);
    const loginsAfterRefusal = simulator.requestCount('loginCms');
    expect(loginsAfterRefusal).toBe(2);

    // Until the recheck, the whole fleet waits without asking WSAA again.
    await Promise.all(Array.from({ length: 5 }, () => expect(provider().getTicket(ISSUER)).rejects.toBeInstanceOf(WsaaTicketLostError)));
    expect(simulator.requestCount('loginCms')).toBe(loginsAfterRefusal);

    simulator.expireTickets(); // the lost ticket's 12 hours pass
    await delay(1100);
    const ticket = await tickets.getTicket(ISSUER);
    expect(simulator.loginCount(CUIT)).toBe(2);
    expect(await tickets.getTicket(ISSUER)).toEqual(ticket);
    expect(outcomes).toEqual(['issued', 'lost', 'issued', 'cached']);
  });

  it('keeps using the cached ticket when WSAA refuses an early refresh, and does not ask again before it expires', async () => {
    const first = await provider().getTicket(ISSUER);
    // A margin wider than the ticket's life makes it due for refresh; AFIP still holds it as valid.
    const outcomes: TicketOutcome[] = [];
    const refreshing = provider({ refreshMarginSeconds: 13 * 3600, onTicket: (outcome) => outcomes.push(outcome) });
    expect(await refreshing.getTicket(ISSUER)).toEqual(first);
    expect(await refreshing.getTicket(ISSUER)).toEqual(first);
    expect(outcomes).toEqual(['kept', 'kept']);
    expect(simulator.requestCount('loginCms')).toBe(2);
    expect(simulator.loginCount(CUIT)).toBe(1);
  });

  it('drops the cached ticket on invalidate, so the next call logs in', async () => {
    const tickets = provider();
    await tickets.getTicket(ISSUER);
    await tickets.invalidate(ISSUER);
    simulator.expireTickets();
    await tickets.getTicket(ISSUER);
    expect(simulator.loginCount(CUIT)).toBe(2);
  });

  it('ignores a cache entry it cannot read and replaces it', async () => {
    await redis.set(`${keyPrefix}:afip-wsaa:ticket:${ISSUER.tenantId}:${CUIT}:wsfe`, 'not json');
    const ticket = await provider().getTicket(ISSUER);
    expect(JSON.parse((await redis.get(`${keyPrefix}:afip-wsaa:ticket:${ISSUER.tenantId}:${CUIT}:wsfe`)) ?? '{}')).toMatchObject({ token: ticket.token });
  });
});
