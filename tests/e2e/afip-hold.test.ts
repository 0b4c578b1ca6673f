import { createInvoiceAuthorizer, createTicketProvider, createWsaaClient, createWsfeClient, type InvoiceStore } from '@jobfleet/afip';
import { createTestCertificate, startAfipSimulator, type AfipSimulator } from '@jobfleet/afip/simulator';
import { afipSyncRequestSchema } from '@jobfleet/contracts';
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

  it("reads the series' state from Postgres once per hold, however many rounds it serves, and numbers every invoice in turn", async () => {
    const { db } = testDb.database;
    const logger = createLogger({ level: 'silent', serviceName: 'test' });
    const metrics = createMetrics();
    audit = createBufferedAuditSink({ database: testDb.database, metrics, logger });
    const locks = createLockManager({ redis, keyPrefix: `${prefix}:lock`, owner: 'afip-hold-test', audit, metrics, logger });
    const credentials = createTestCertificate({ cuit: CUIT });
    const tickets = createTicketProvider({
      redis,
      keyPrefix: prefix,
      wsaa: createWsaaClient({ url: simulator.wsaaUrl, timeoutMs: 5000 }),
      credentials: () => credentials,
      withLock: (key, fn) => locks.withLock(key, { waitMs: 5000, ttlMs: 30_000 }, () => fn()),
    });
    let seriesReads = 0;
    const invoices: InvoiceStore = {
      findByIdempotencyKeys: (tenantId, keys) => afipInvoiceRepository.findByIdempotencyKeys(db, tenantId, keys),
      seriesState: (key) => {
        seriesReads++;
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
      // One voucher per request: each invoice is a round of the hold.
      maxVouchersPerRequest: 1,
    });

    // Three invoices of one series at once: one hold serves them in three rounds.
    const results = await Promise.all(
      ['hold-1', 'hold-2', 'hold-3'].map((id) =>
        authorizer.authorize({ tenantId: 'acme', idempotencyKey: id, jobId: id, request: afipSyncRequestSchema.parse(invoiceRequest(id)) }),
      ),
    );
    expect(results.map((result) => result.cbteNro)).toEqual([1, 2, 3]);
    expect(seriesReads).toBe(1);
    // What the hold kept in memory is what it wrote: the known last number, no reservation left open.
    expect(await afipInvoiceRepository.seriesState(db, { tenantId: 'acme', cuit: CUIT, ptoVta: 1, cbteTipo: 1 })).toMatchObject({ lastCbteNro: 3, reserved: [] });
    expect(simulator.requestCount('FECompUltimoAutorizado')).toBe(1);
  });
});
