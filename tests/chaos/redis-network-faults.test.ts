import { sleep, startChaosSystem, type ChaosSystem } from '../support/chaos';
import { startLoad } from '../support/chaos-load';
import { verifyChaos } from '../support/chaos-verify';

// The network between the workers and Redis misbehaves while the load runs (the API keeps a direct
// connection, so jobs keep arriving): first every packet is slow, then every connection is reset
// several times, then Redis's port refuses connections for 2 s, then all heals. Workers must ride
// it out on their own: reconnect, let stalled-job recovery re-run what lost its lock, and finish
// every job with each effect once.
describe('chaos: latency, resets and refused connections between workers and Redis', () => {
  let system: ChaosSystem | undefined;
  afterAll(async () => {
    await system?.close();
  }, 60_000);

  it('completes every accepted job, none lost, no effect duplicated', async () => {
    system = await startChaosSystem({ label: 'chaos-redis-net', workers: 2, proxyWorkerRedis: true });
    const proxy = system.redisProxy;
    if (!proxy) throw new Error('no proxy');
    system.base.calendar.setLatency(100);
    const load = startLoad(system, { calendar: 150, afip: 60, backups: 4, durationMs: 20_000 });

    await sleep(3000);
    proxy.setLatency(200);
    system.note('Redis latency 200 ms each way');
    await sleep(4000);
    proxy.setLatency(0);
    for (let i = 1; i <= 3; i++) {
      proxy.resetAll();
      system.note(`every worker connection to Redis reset (${i}/3)`);
      await sleep(1000);
    }
    proxy.setRefusing(true);
    proxy.resetAll();
    system.note('Redis refusing worker connections');
    await sleep(2000);
    proxy.setRefusing(false);
    system.note('network healed');

    const report = await verifyChaos(system, await load.done, { name: 'redis-network-faults' });
    // The workers came back by themselves: they are connected through the proxy again.
    expect(proxy.openConnections()).toBeGreaterThan(0);
    expect(report.accepted).toBe(214);
    expect({ lost: report.lost, failed: report.failed, problems: report.problems }).toEqual({ lost: [], failed: [], problems: [] });
    expect(report.duplicatedEffects).toBe(0);
    expect(report.completed).toBe(report.accepted);
  }, 240_000);
});
