import { googleConnectionRepository } from '@jobfleet/db';
import { parseKeyring } from '@jobfleet/secrets';
import { reservation, startTestApi, type TestApi } from '../testing/harness';

// The acceptor gathers concurrent single-job requests into one call of bulk steps; these check
// what that must not change: each request's own answer, and a removed connection biting in time.
describe('accepting gathered requests', () => {
  // Long enough that a loaded machine still posts twice and removes a row within it.
  const ADMISSION_TTL_MS = 2000;
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-accept', admissionCacheTtlMs: ADMISSION_TTL_MS });
  });
  afterAll(async () => {
    await api.close();
  });

  it('answers each of many concurrent requests of two tenants with its own job, one job each', async () => {
    const before = await api.jobCount();
    const sent = Array.from({ length: 60 }, (_, n) => ({ id: `gathered-${n}`, key: n % 2 === 0 ? api.keys.writer : api.keys.otherTenant }));
    const answers = await Promise.all(
      sent.map(({ id, key }) => api.post(reservation(id), { 'idempotency-key': id, authorization: `Bearer ${key}` })),
    );
    expect(answers.map((answer) => answer.statusCode)).toEqual(sent.map(() => 202));
    const jobIds = answers.map((answer) => answer.json<{ jobId: string }>().jobId);
    expect(new Set(jobIds).size).toBe(60);
    // Each answer names its own tenant's job; the same key under the other tenant is another job.
    jobIds.forEach((jobId, n) => expect(jobId.startsWith(n % 2 === 0 ? 'acme-' : 'globex-')).toBe(true));
    expect((await api.jobCount()) - before).toBe(60);
  });

  it('stops admitting a removed connection within the admission cache time, and never reuses a refusal', async () => {
    const { db } = api.testDb.database;
    expect((await api.post(reservation('before-removal'))).statusCode).toBe(202);
    await googleConnectionRepository.remove(db, 'acme');
    // Reused: the worker checks the connection again before it calls Google.
    expect((await api.post(reservation('just-after-removal'))).statusCode).toBe(202);
    await new Promise((done) => setTimeout(done, ADMISSION_TTL_MS + 100));
    const refused = await api.post(reservation('after-the-cache-time'));
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ type: '/problems/connection-not-owned' });

    const keyring = parseKeyring(api.config.secrets.keys, api.config.secrets.activeKeyId);
    await googleConnectionRepository.add(db, keyring, { tenantId: 'acme', credential: { kind: 'access-token', token: 'again' }, access: { policy: 'credential' } });
    // The refusal was not kept: the connection is back, so is the admission.
    expect((await api.post(reservation('after-re-adding'))).statusCode).toBe(202);
  });
});
