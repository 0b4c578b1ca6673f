import { createInvoiceAuthorizer, createTicketProvider, RoundCallFailedError, createWsaaClient, createWsfeClient, type InvoiceStore } from '@jobfleet/afip';
import { createTestCertificate, startAfipSimulator, type AfipSimulator } from '@jobfleet/afip/simulator';
import { afipSyncRequestSchema, DependencyWaitError } from '@jobfleet/contracts';
import { afipInvoiceRepository } from '@jobfleet/db';
import { createBufferedAuditSink, createLockManager } from '@jobfleet/locks';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { createRedisConnection, type RedisClient } from '@jobfleet/queue';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { invoiceRequest } from '../support/fixtures';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../support/redis';

const CUIT = 30712345671;

// One process's authorizer against the AFIP simulator, real Postgres and the fleet lock on real Redis.
describe('afip-sync: one hold of a series lock', () => {
  const prefix = uniquePrefix('afip-hold');
  let testDb: TestDatabase;
  let simulator: AfipSimulator;
  let redis: RedisClient;
  let audit: ReturnType<typeof createBufferedAuditSink> | undefined;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
    simulator = await startAfipSimulator();
    redis = createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'afip-hold-test' });
  });
  afterAll(async () => {
    await audit?.close();
    redis.disconnect();
    await deletePrefix(prefix);
    await simulator.close();
    await testDb.drop();
  });

  /** One process's authorizer; `seriesReads` counts its reads of the series' state from Postgres. */
  function startAuthorizer(options: { maxVouchersPerRequest?: number }) {
    const { db } = testDb.database;
    const logger = createLogger({ level: 'silent', serviceName: 'test' });
    const metrics = createMetrics();
    audit ??= createBufferedAuditSink({ database: testDb.database, metrics, logger });
    const locks = createLockManager({ redis, keyPrefix: `${prefix}:lock`, owner: 'afip-hold-test', audit, metrics, logger });
    const credentials = createTestCertificate({ cuit: CUIT });
    const tickets = createTicketProvider({
      redis,
      keyPrefix: prefix,
      wsaa: createWsaaClient({ url: simulator.wsaaUrl, timeoutMs: 5000 }),
      credentials: () => credentials,
      withLock: (key, fn) => locks.withLock(key, { waitMs: 5000, ttlMs: 30_000 }, () => fn()),
    });
    const counts = { seriesReads: 0 };
    const invoices: InvoiceStore = {
      findByIdempotencyKeys: (tenantId, keys) => afipInvoiceRepository.findByIdempotencyKeys(db, tenantId, keys),
      seriesState: (key) => {
        counts.seriesReads++;
        return afipInvoiceRepository.seriesState(db, key);
      },
      reserveLot: (key, fencingToken, lot) => afipInvoiceRepository.reserveLot(db, key, fencingToken, lot),
      settleLot: (key, fencingToken, settlement) => afipInvoiceRepository.settleLot(db, key, fencingToken, settlement),
    };
    const authorizer = createInvoiceAuthorizer({
      ownsIssuer: async () => true,
      wsfe: createWsfeClient({ url: simulator.wsfeUrl, timeoutMs: 5000 }),
      tickets,
      invoices,
      withLock: (key, tenantId, fn) => locks.withLock(key, { waitMs: 5000, ttlMs: 30_000, tenantId }, fn),
      ...options,
    });
    const authorizeAll = (ids: readonly string[]) =>
      ids.map((id) => authorizer.authorize({ tenantId: 'acme', idempotencyKey: id, jobId: id, request: afipSyncRequestSchema.parse(invoiceRequest(id)) }));
    return { authorizeAll, counts };
  }

  it("reads the series' state from Postgres once per hold, however many rounds it serves, and numbers every invoice in turn", async () => {
    const { db } = testDb.database;
    // One voucher per request: each invoice is a round of the hold.
    const { authorizeAll, counts } = startAuthorizer({ maxVouchersPerRequest: 1 });

    // Three invoices of one series at once: one hold serves them in three rounds.
    const results = await Promise.all(authorizeAll(['hold-1', 'hold-2', 'hold-3']));
    expect(results.map((result) => result.cbteNro)).toEqual([1, 2, 3]);
    expect(counts.seriesReads).toBe(1);
    // What the hold kept in memory is what it wrote: the known last number, no reservation left open.
    expect(await afipInvoiceRepository.seriesState(db, { tenantId: 'acme', cuit: CUIT, ptoVta: 1, cbteTipo: 1 })).toMatchObject({ lastCbteNro: 3, reserved: [] });
    expect(simulator.requestCount('FECompUltimoAutorizado')).toBe(1);
  });

  it('charges a failed call made for a whole round to one invoice only: the others wait without spending an attempt', async () => {
    const { db } = testDb.database;
    // Lots: the round's first call asks WSFE for RegXReq (FECompTotXRequest), made for all three.
    const { authorizeAll } = startAuthorizer({});
    simulator.setOutage('service-unavailable', 'wsfe');
    const outcomes = await Promise.allSettled(authorizeAll(['outage-1', 'outage-2', 'outage-3']));
    simulator.setOutage(null, 'wsfe');
    const reasons = outcomes.map((outcome) => (outcome.status === 'rejected' ? (outcome.reason as Error) : undefined));
    expect(reasons.map((reason) => reason?.constructor.name)).toEqual(['DependencyUnavailableError', 'RoundCallFailedError', 'RoundCallFailedError']);
    expect(reasons[0]?.message).toMatch(/^afip-wsfe: FECompTotXRequest answered HTTP 503/);
    // Waits: the attempt policy puts them back in delayed without spending an attempt.
    for (const reason of reasons.slice(1)) {
      expect(reason).toBeInstanceOf(RoundCallFailedError);
      expect(reason).toBeInstanceOf(DependencyWaitError);
      expect(reason).toMatchObject({ dependency: 'afip-wsfe', retryAfterMs: 1000, cause: reasons[0] });
    }
    // Nothing was numbered meanwhile; once WSFE answers, the three follow the first test's three.
    expect(await afipInvoiceRepository.findByIdempotencyKeys(db, 'acme', ['outage-1', 'outage-2', 'outage-3'])).toEqual([]);
    const results = await Promise.all(authorizeAll(['outage-1', 'outage-2', 'outage-3']));
    expect(results.map((result) => result.cbteNro)).toEqual([4, 5, 6]);
  });
});
