import { backupRepository, createApiKey } from '@jobfleet/db';
import { rm } from 'node:fs/promises';
import { backupDirectory, createOperatorKey } from '../support/backup';
import { startTestSystem, type TestSystem } from '../support/system';

describe('backup API', () => {
  let system: TestSystem;
  let directory: string;
  let adminKey: string;
  beforeAll(async () => {
    directory = await backupDirectory();
    system = await startTestSystem({
      label: 'backup-api',
      // Only the API: these tests read and refuse, nothing needs to run.
      workers: false,
      env: {
        BACKUP_TARGETS: JSON.stringify({ local: { type: 'filesystem', directory } }),
        BACKUP_DEFINITIONS: JSON.stringify([{ name: 'nightly', target: 'local', cron: '0 3 * * *' }]),
      },
    });
    adminKey = await createOperatorKey(system.testDb.database.db, system.tenantId);
  });
  afterAll(async () => {
    await system.close();
    await rm(directory, { recursive: true, force: true });
  });

  const post = (body: unknown, key = adminKey, headers: Record<string, string> = {}) =>
    system.api.inject({
      method: 'POST',
      url: '/v1/jobs/backup',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const get = (url: string, authorization = `Bearer ${adminKey}`) => system.api.inject({ method: 'GET', url, headers: { authorization } });
  const queued = async () => {
    const counts = await system.queues.backup.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  };

  it('enqueues an on-demand run of a configured definition, idempotently', async () => {
    const first = await post({ definition: 'nightly', restoreCheck: 'none' }, adminKey, { 'idempotency-key': 'ops-run-1' });
    const again = await post({ definition: 'nightly', restoreCheck: 'none' }, adminKey, { 'idempotency-key': 'ops-run-1' });

    expect(first.statusCode).toBe(202);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const { jobId, links } = JSON.parse(first.body) as { jobId: string; links: Record<string, string> };
    expect(links).toEqual({ self: `/v1/jobs/${jobId}` });
    const job = await system.queues.backup.getJob(jobId);
    expect(job?.data).toMatchObject({ tenantId: system.tenantId, request: { definition: 'nightly', restoreCheck: 'none' } });
    await job?.remove();
  });

  it.each([
    ['an unknown definition', { definition: 'weekly' }, 422, 'No backup definition "weekly" is configured (known: nightly)'],
    ['a definition name that can never exist', { definition: 'Nightly.2' }, 422, 'The request body is invalid'],
    ['an unknown field', { definition: 'nightly', database: 'postgres://elsewhere/db' }, 422, 'The request body is invalid'],
    ['a full check this deployment cannot do', { definition: 'nightly', restoreCheck: 'full' }, 422, 'BACKUP_RESTORE_SCRATCH_URL'],
    ['malformed JSON', '{"definition": ', 400, ''],
  ])('refuses %s and enqueues nothing', async (_label, body, status, detail) => {
    const answer = await post(body);
    expect(answer.statusCode).toBe(status);
    expect(answer.headers['content-type']).toContain('application/problem+json');
    expect((JSON.parse(answer.body) as { detail: string }).detail).toContain(detail);
    expect(await queued()).toBe(0);
  });

  it('only admin keys may run or read backups', async () => {
    expect((await post({ definition: 'nightly' }, system.apiKey)).statusCode).toBe(403);
    expect((await get('/v1/backups', `Bearer ${system.apiKey}`)).statusCode).toBe(403);
    expect((await get('/v1/backups', '')).statusCode).toBe(401);
    const basic = `Basic ${Buffer.from('admin:admin').toString('base64')}`;
    expect((await get('/v1/backups', basic)).statusCode).toBe(200);
    expect(await queued()).toBe(0);
  });

  it('lists runs newest first with a cursor and shows one run', async () => {
    const { db } = system.testDb.database;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { row } = await backupRepository.start(db, { schedule: 'nightly', slot: new Date(Date.UTC(2026, 10, 20 + i, 6)), target: 'filesystem:/b', jobId: `j${i}` });
      await backupRepository.succeed(db, row, { location: `/b/nightly.${i}.dump`, bytes: 100 + i, sha256: 'ab'.repeat(32), restoreCheck: { mode: 'list', sha256Verified: true } });
      ids.push(row.id);
    }

    const first = await get('/v1/backups?limit=2');
    expect(first.statusCode).toBe(200);
    const page1 = JSON.parse(first.body) as { items: { id: string }[]; nextCursor: string | null };
    expect(page1.items.map((i) => i.id)).toEqual([ids[2], ids[1]]);
    const page2 = JSON.parse((await get(`/v1/backups?limit=2&cursor=${page1.nextCursor ?? ''}`)).body) as typeof page1;
    expect(page2).toEqual({ items: [expect.objectContaining({ id: ids[0] })], nextCursor: null });

    const one = await get(`/v1/backups/${ids[0]!}`);
    expect(JSON.parse(one.body)).toMatchObject({
      id: ids[0],
      definition: 'nightly',
      trigger: 'scheduled',
      slot: '2026-11-20T06:00:00.000Z',
      status: 'succeeded',
      location: '/b/nightly.0.dump',
      bytes: 100,
      restoreCheck: { mode: 'list', sha256Verified: true },
      links: { self: `/v1/backups/${ids[0]!}`, job: '/v1/jobs/j0' },
    });
  });

  it.each([
    ['/v1/backups?limit=0', 400],
    ['/v1/backups?limit=101', 400],
    ['/v1/backups?cursor=not-a-cursor', 400],
    ['/v1/backups?sort=asc', 400],
    ['/v1/backups/not-a-uuid', 400],
    ['/v1/backups/00000000-0000-4000-8000-000000000000', 404],
  ])('GET %s answers %i', async (url, status) => {
    const answer = await get(url);
    expect(answer.statusCode).toBe(status);
    expect(answer.headers['content-type']).toContain('application/problem+json');
  });

  it("refuses a tenant's own admin key: backups dump and list every tenant's data (fleet:admin only)", async () => {
    const tenantAdmin = (await createApiKey(system.testDb.database.db, { tenantId: system.tenantId, name: 'tenant admin', scopes: ['admin', 'jobs:read'] })).key;
    const before = await queued();
    const refused = await post({ definition: 'nightly' }, tenantAdmin, { 'idempotency-key': 'tenant-admin-try' });
    expect(refused.statusCode).toBe(403);
    expect(await queued()).toBe(before);
    expect((await get('/v1/backups', `Bearer ${tenantAdmin}`)).statusCode).toBe(403);
  });
});
