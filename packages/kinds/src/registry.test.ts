import { loadConfig } from '@jobfleet/config';
import { JOB_KINDS, QUEUE_NAMES } from './registry';

describe('job kind registry', () => {
  it('config knows exactly the kinds the registry lists (QUEUES and <QUEUE>_* variables)', () => {
    const config = loadConfig({});
    expect(Object.keys(config.worker.perQueue).sort()).toEqual([...QUEUE_NAMES].sort());
    expect(loadConfig({ QUEUES: QUEUE_NAMES.join(',') }).worker.queues).toEqual(QUEUE_NAMES);
  });

  it('names every kind once, and sync kinds once', () => {
    expect(new Set(QUEUE_NAMES).size).toBe(JOB_KINDS.length);
    const syncKinds = JOB_KINDS.flatMap((kind) => (kind.syncKind === null ? [] : [kind.syncKind]));
    expect(new Set(syncKinds).size).toBe(syncKinds.length);
  });
});
