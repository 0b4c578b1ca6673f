import { createApiKey, deprecatedUsageRepository } from '@jobfleet/db';
import { createLogger } from '@jobfleet/observability';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { createDeprecatedUsageCounter } from './deprecation';

describe('the deprecated-route counter', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('keeps the counts of a failed write for the next flush, and writes each count once', async () => {
    const { db } = testDb.database;
    const key = await createApiKey(db, { tenantId: 'acme', name: 'pos', scopes: ['jobs:read'] });
    const warnings: string[] = [];
    const log = createLogger({ level: 'warn', serviceName: 'counter-test', destination: { write: (line: string) => void warnings.push(line) } });
    // Flushed by hand only.
    const counter = createDeprecatedUsageCounter({ db, flushMs: 3_600_000, log });
    const caller = { keyId: key.id, tenantId: 'acme', scopes: ['jobs:read' as const], expiresAt: null };
    const at = new Date();
    counter.count(caller, 'GET /v1/usage', at);
    counter.count(caller, 'GET /v1/usage', at);

    // The table out of reach: the write fails, the counts stay in memory.
    await db.execute(sql`alter table api_deprecated_usage rename to api_deprecated_usage_away`);
    await counter.flush();
    await db.execute(sql`alter table api_deprecated_usage_away rename to api_deprecated_usage`);
    expect(warnings.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(["could not write the deprecated-route counts; kept for the next flush"]);

    counter.count(caller, 'GET /v1/usage', at);
    await counter.close();
    await counter.flush();
    const since = at.toISOString().slice(0, 10);
    expect((await deprecatedUsageRepository.list(db, { sinceDay: since })).map(({ route, count }) => ({ route, count }))).toEqual([{ route: 'GET /v1/usage', count: 3 }]);
  });
});
