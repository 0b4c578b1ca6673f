import { Queue } from 'bullmq';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../../tests/support/redis';
import { createRedisConnection, type RedisClient } from './connection';
import { createTenantCapacity, quotaDay, secondsUntilNextQuotaDay, type TenantCapacity } from './tenant-capacity';

const quotas = { jobsPerDay: 100, maxWaitingJobs: 100, maxRunningJobs: 2 };
const ref = (tenantId: string, jobId: string) => ({ kind: 'calendar-sync', tenantId, jobId });

describe('tenant capacity in Redis', () => {
  let redis: RedisClient;
  let prefix: string;
  let capacity: TenantCapacity;
  beforeEach(() => {
    redis = createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'tenant-capacity-test' });
    prefix = uniquePrefix('capacity');
    capacity = createTenantCapacity(redis, prefix);
  });
  afterEach(async () => {
    redis.disconnect();
    await deletePrefix(prefix);
  });

  it("gives each job its tenant's count of unstarted jobs as priority, and counts a retried admission once", async () => {
    expect(await capacity.admit(ref('a', 'a-1'), quotas)).toEqual({ admitted: true, priority: 1, counted: true });
    expect(await capacity.admit(ref('a', 'a-2'), quotas)).toEqual({ admitted: true, priority: 2, counted: true });
    expect(await capacity.admit(ref('a', 'a-3'), quotas)).toEqual({ admitted: true, priority: 3, counted: true });
    // Another tenant starts at the front; a repeated admission counts nothing.
    expect(await capacity.admit(ref('b', 'b-1'), quotas)).toEqual({ admitted: true, priority: 1, counted: true });
    expect(await capacity.admit(ref('a', 'a-3'), quotas)).toMatchObject({ admitted: true, counted: false });
    expect(await capacity.usage('calendar-sync', 'a')).toEqual({ acceptedToday: 3, waiting: 3, running: 0 });

    // A started job no longer counts as waiting: the next one goes in at its place.
    expect(await capacity.enter(ref('a', 'a-1'), 2, 10_000)).toEqual({ entered: true });
    expect(await capacity.admit(ref('a', 'a-4'), quotas)).toMatchObject({ priority: 3 });
  });

  it('refuses over the day and waiting quotas, and a withdrawn admission stops counting', async () => {
    const tight = { ...quotas, jobsPerDay: 2, maxWaitingJobs: 5 };
    await capacity.admit(ref('a', 'a-1'), tight);
    await capacity.admit(ref('a', 'a-2'), tight);
    expect(await capacity.admit(ref('a', 'a-3'), tight)).toEqual({ admitted: false, quota: 'jobsPerDay', limit: 2, used: 2 });
    await capacity.withdraw(ref('a', 'a-2'));
    await capacity.withdraw(ref('a', 'a-2'));
    expect(await capacity.usage('calendar-sync', 'a')).toEqual({ acceptedToday: 1, waiting: 1, running: 0 });
    expect(await capacity.admit(ref('a', 'a-3'), tight)).toMatchObject({ admitted: true });

    const oneWaiting = { ...quotas, maxWaitingJobs: 1 };
    expect(await capacity.admit(ref('c', 'c-1'), oneWaiting)).toMatchObject({ admitted: true });
    const queue = new Queue('calendar-sync', { connection: redis, prefix });
    await queue.add('sync', {}, { jobId: 'c-1' });
    expect(await capacity.admit(ref('c', 'c-2'), oneWaiting)).toEqual({ admitted: false, quota: 'maxWaitingJobs', limit: 1, used: 1 });
    // c-1 removed by hand never finishes: the next refusal finds it gone and frees its place.
    await queue.remove('c-1');
    expect(await capacity.admit(ref('c', 'c-2'), oneWaiting)).toMatchObject({ admitted: true, priority: 1 });
    await queue.close();
  });

  it("counts the jobs of many tenants gathered in one call each against its own tenant, and the call creating a day counter sets its expiry", async () => {
    const now = Date.now();
    const dayKey = (tenantId: string) => `${prefix}:tenancy:calendar-sync:${tenantId}:accepted:${quotaDay(now)}`;
    const day = { ...quotas, jobsPerDay: 2 };
    // One script call: the gathered admissions of two tenants, interleaved.
    const answers = await Promise.all([
      capacity.admit(ref('a', 'a-1'), day, now),
      capacity.admit(ref('b', 'b-1'), day, now),
      capacity.admit(ref('a', 'a-2'), day, now),
      capacity.admit(ref('a', 'a-3'), day, now),
      capacity.admit(ref('b', 'b-2'), day, now),
    ]);
    expect(answers).toEqual([
      { admitted: true, priority: 1, counted: true },
      { admitted: true, priority: 1, counted: true },
      { admitted: true, priority: 2, counted: true },
      { admitted: false, quota: 'jobsPerDay', limit: 2, used: 2 },
      { admitted: true, priority: 2, counted: true },
    ]);
    expect(await redis.get(dayKey('a'))).toBe('2');
    expect(await redis.get(dayKey('b'))).toBe('2');
    const ttl = await redis.ttl(dayKey('a'));
    expect(ttl).toBeGreaterThan(86_400);
    expect(ttl).toBeLessThanOrEqual(2 * 86_400);
    // A later call adds to a counter that exists and leaves its expiry as the first call set it.
    await redis.expire(dayKey('b'), 1000);
    expect(await capacity.admit(ref('b', 'b-3'), { ...quotas, jobsPerDay: 5 }, now)).toMatchObject({ admitted: true, priority: 3 });
    expect(await redis.get(dayKey('b'))).toBe('3');
    expect(await redis.ttl(dayKey('b'))).toBeLessThanOrEqual(1000);
  });

  it('admits many jobs in order, up to a quota and not past it, and withdraws many at once', async () => {
    const day = { ...quotas, jobsPerDay: 3 };
    const batch = { kind: 'calendar-sync', tenantId: 'a' };
    expect(await capacity.admit(ref('a', 'a-0'), day)).toMatchObject({ admitted: true, priority: 1 });
    expect(await capacity.admitMany(batch, ['a-1', 'a-0', 'a-2', 'a-3'], day)).toEqual([
      { admitted: true, priority: 2, counted: true },
      // Pending already: admitted again, counted once.
      { admitted: true, priority: 2, counted: false },
      { admitted: true, priority: 3, counted: true },
      { admitted: false, quota: 'jobsPerDay', limit: 3, used: 3 },
    ]);
    await capacity.withdrawMany(batch, ['a-1', 'a-2']);
    expect(await capacity.usage('calendar-sync', 'a')).toEqual({ acceptedToday: 1, waiting: 1, running: 0 });
    await expect(capacity.admitMany(batch, [], day)).resolves.toEqual([]);

    // Over the waiting quota, vanished entries are reclaimed first, as for a single admission.
    const oneWaiting = { ...quotas, maxWaitingJobs: 1 };
    const c = { kind: 'calendar-sync', tenantId: 'c' };
    await capacity.admit(ref('c', 'c-gone'), oneWaiting);
    expect(await capacity.admitMany(c, ['c-1', 'c-2'], oneWaiting)).toEqual([
      { admitted: true, priority: 1, counted: true },
      { admitted: false, quota: 'maxWaitingJobs', limit: 1, used: 1 },
    ]);
  });

  it('holds running slots fleet-wide, gives back an expired lease, and frees a slot when the attempt ends', async () => {
    for (const jobId of ['a-1', 'a-2', 'a-3', 'a-4']) await capacity.admit(ref('a', jobId), quotas);
    expect(await capacity.enter(ref('a', 'a-1'), 2, 10_000)).toEqual({ entered: true });
    expect(await capacity.enter(ref('a', 'a-2'), 2, 50)).toEqual({ entered: true });
    // Entering again (a stalled job run again) keeps the slot.
    expect(await capacity.enter(ref('a', 'a-1'), 2, 10_000)).toEqual({ entered: true });
    expect(await capacity.enter(ref('a', 'a-4'), 2, 10_000)).toEqual({ entered: false, ahead: 1 });
    expect(await capacity.enter(ref('b', 'b-1'), 2, 10_000)).toEqual({ entered: true });

    // a-2's holder "crashed": its lease ends and the slot comes back.
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(await capacity.enter(ref('a', 'a-3'), 2, 10_000)).toEqual({ entered: true });
    await capacity.leave(ref('a', 'a-1'), false);
    expect(await capacity.usage('calendar-sync', 'a')).toEqual({ acceptedToday: 4, waiting: 3, running: 1 });
    await capacity.leave(ref('a', 'a-3'), true);
    expect(await capacity.usage('calendar-sync', 'a')).toEqual({ acceptedToday: 4, waiting: 3, running: 0 });
  });

  it('answers calls made at once, of any tenants, as if made one after the other in that order', async () => {
    // One turn of the event loop: these go to Redis as one admission call and one slots call.
    expect(await Promise.all([capacity.admit(ref('a', 'a-1'), quotas), capacity.admit(ref('b', 'b-1'), quotas), capacity.admit(ref('a', 'a-2'), quotas), capacity.admit(ref('a', 'a-1'), quotas)])).toEqual([
      { admitted: true, priority: 1, counted: true },
      { admitted: true, priority: 1, counted: true },
      { admitted: true, priority: 2, counted: true },
      { admitted: true, priority: 2, counted: false },
    ]);
    for (const jobId of ['a-3', 'a-4']) await capacity.admit(ref('a', jobId), quotas);
    expect(await Promise.all([capacity.enter(ref('a', 'a-1'), 2, 10_000), capacity.enter(ref('a', 'a-2'), 2, 10_000), capacity.enter(ref('a', 'a-3'), 2, 10_000), capacity.enter(ref('b', 'b-1'), 2, 10_000)])).toEqual([
      { entered: true },
      { entered: true },
      { entered: false, ahead: 0 },
      { entered: true },
    ]);
    // A slot freed in the same call as the next attempt's enter is free for it: the leave came first.
    const [, enteredAfterLeave, refused] = await Promise.all([
      capacity.leave(ref('a', 'a-1'), true),
      capacity.enter(ref('a', 'a-3'), 2, 10_000),
      capacity.enter(ref('a', 'a-4'), 2, 10_000),
    ]);
    expect(enteredAfterLeave).toEqual({ entered: true });
    expect(refused).toEqual({ entered: false, ahead: 0 });
    expect(await capacity.usage('calendar-sync', 'a')).toEqual({ acceptedToday: 4, waiting: 1, running: 2 });
  });

  it("keeps tenants' keys apart whatever their ids hold", async () => {
    await capacity.admit(ref('a:b', 'x-1'), quotas);
    expect(await capacity.usage('calendar-sync', 'a')).toEqual({ acceptedToday: 0, waiting: 0, running: 0 });
    expect(await capacity.usage('calendar-sync', 'a:b')).toMatchObject({ acceptedToday: 1 });
  });

  it('tells the seconds until the next UTC day', () => {
    expect(secondsUntilNextQuotaDay(Date.UTC(2026, 11, 1, 23, 59, 59, 500))).toBe(1);
    expect(secondsUntilNextQuotaDay(Date.UTC(2026, 11, 1, 0, 0, 0))).toBe(86_400);
  });
});
