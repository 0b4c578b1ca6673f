import { WsaaTicketLostError } from '@jobfleet/afip';
import { classifyPostgresError, FencedOutError } from '@jobfleet/db';
import { LockLostError, LockUnavailableError } from '@jobfleet/locks';
import { decideAfterError, WorkerBusyError, type AttemptFacts } from '@jobfleet/queue';

// The policy's own branches are tested in @jobfleet/queue; here, the fleet's error classes from
// the packages the queue package does not depend on, with the worker's isPermanent.
const NOW = Date.parse('2026-06-01T12:00:00Z');
const settings = { maxWaitMs: 24 * 3_600_000, isPermanent: (e: Error) => classifyPostgresError(e) === 'bug' };
const young: AttemptFacts = { attemptsMade: 0, maxAttempts: 5, createdAt: NOW - 1000, now: NOW };
const old: AttemptFacts = { ...young, createdAt: NOW - 25 * 3_600_000 };

describe('the fleet’s errors under the attempt policy', () => {
  it('waits a busy lock’s 500 ms without the dependency floor, and retries it past the budget', () => {
    const busy = new LockUnavailableError('afip:30712345671:1:1', 2000);
    expect(decideAfterError(busy, young, settings)).toEqual({ action: 'wait', delayMs: 500, reason: 'lock afip:30712345671:1:1 busy' });
    expect(decideAfterError(busy, old, settings)).toEqual({ action: 'retry' });
  });

  it('waits a lost WSAA ticket as a dependency wait: floored at 1000 ms, reason afip-wsaa unavailable', () => {
    const lost = (ms: number) => new WsaaTicketLostError(30712345671, 'wsfe', new Date(NOW + 3_600_000), ms);
    expect(decideAfterError(lost(300), young, settings)).toEqual({ action: 'wait', delayMs: 1000, reason: 'afip-wsaa unavailable' });
    expect(decideAfterError(lost(60_000), young, settings)).toMatchObject({ action: 'wait', delayMs: 60_000 });
    expect(decideAfterError(lost(60_000), { ...old, attemptsMade: 4 }, settings)).toEqual({ action: 'fail', permanent: false });
  });

  it('waits a worker over its memory limit for exactly its hint', () => {
    expect(decideAfterError(new WorkerBusyError('rss 900 MB over 800 MB', 250), young, settings)).toMatchObject({ action: 'wait', delayMs: 250 });
  });

  it('retries a fenced-out write and a lost lock: the next attempt takes the lock again', () => {
    const fenced = new FencedOutError({ tenantId: 't', cuit: 30712345671, ptoVta: 1, cbteTipo: 1 }, 4);
    expect(decideAfterError(fenced, young, settings)).toEqual({ action: 'retry' });
    expect(decideAfterError(new LockLostError('afip:30712345671:1:1', 'deadline'), young, settings)).toEqual({ action: 'retry' });
  });

  it('fails a deterministic SQL error at once, also wrapped as a cause, and retries an unavailable or transient one', () => {
    const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });
    const wrapped = new Error('Failed query: insert into "sync_status" ...', { cause: pgError('22023') });
    expect(decideAfterError(pgError('23505'), young, settings)).toEqual({ action: 'fail', permanent: true });
    expect(decideAfterError(wrapped, young, settings)).toEqual({ action: 'fail', permanent: true });
    expect(decideAfterError(pgError('57P01'), young, settings)).toEqual({ action: 'retry' });
    expect(decideAfterError(pgError('40001'), young, settings)).toEqual({ action: 'retry' });
  });
});
