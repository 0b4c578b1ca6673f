import { CircuitOpenError, DependencyUnavailableError, DependencyWaitError, PermanentError, RateLimitedError } from '@jobfleet/contracts';
import { UnrecoverableError } from 'bullmq';
import { decideAfterError, retryOrFail, type AttemptFacts, type AttemptPolicySettings } from './attempt-policy';
import { AttemptTimeoutError, WorkerBusyError } from './errors';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-06-01T12:00:00Z');
const settings: AttemptPolicySettings = { maxWaitMs: 24 * HOUR };

/** Attempt 1 of 5 by default, of a job created a minute ago (well within the 24 h budget). */
function facts(overrides: Partial<AttemptFacts> = {}): AttemptFacts {
  return { attemptsMade: 0, maxAttempts: 5, createdAt: NOW - 60_000, now: NOW, ...overrides };
}
const pastBudget = (overrides: Partial<AttemptFacts> = {}) => facts({ createdAt: NOW - 25 * HOUR, ...overrides });
const lastAttempt = { attemptsMade: 4, maxAttempts: 5 };

/** A DependencyWaitError of a dependency that did not say how long (a lost ticket rechecked at once). */
class SoonBackError extends DependencyWaitError {
  readonly code = 'SOON_BACK';
  constructor(retryAfterMs: number) {
    super('afip-wsaa', retryAfterMs, 'comes back soon');
  }
}

describe('decideAfterError', () => {
  describe('a WaitError within the wait budget', () => {
    it('waits for the breaker’s retryAfterMs without spending an attempt, its reason naming the dependency', () => {
      expect(decideAfterError(new CircuitOpenError('calendar', 12_000), facts(), settings)).toEqual({
        action: 'wait',
        delayMs: 12_000,
        reason: 'calendar unavailable',
      });
    });

    it('floors a dependency wait at 1000 ms, so a half-open breaker is not hammered', () => {
      expect(decideAfterError(new CircuitOpenError('calendar', 0), facts(), settings)).toMatchObject({ action: 'wait', delayMs: 1000 });
      expect(decideAfterError(new SoonBackError(10), facts(), settings)).toEqual({ action: 'wait', delayMs: 1000, reason: 'afip-wsaa unavailable' });
    });

    it('does not floor a wait that is not about a dependency (a busy worker, a busy lock)', () => {
      expect(decideAfterError(new WorkerBusyError('rss over limit', 200), facts(), settings)).toEqual({
        action: 'wait',
        delayMs: 200,
        reason: 'worker busy (rss over limit)',
      });
    });

    it('waits even on what would be the last attempt: no attempt is spent', () => {
      expect(decideAfterError(new CircuitOpenError('calendar', 5000), facts(lastAttempt), settings)).toMatchObject({ action: 'wait' });
    });

    it('counts the budget from job creation: one millisecond short of it still waits', () => {
      const edge = facts({ createdAt: NOW - settings.maxWaitMs + 1 });
      expect(decideAfterError(new CircuitOpenError('calendar', 5000), edge, settings)).toMatchObject({ action: 'wait' });
    });
  });

  describe('a WaitError past the wait budget', () => {
    it('retries, spending an attempt, once the job is exactly as old as the budget', () => {
      const edge = facts({ createdAt: NOW - settings.maxWaitMs });
      expect(decideAfterError(new CircuitOpenError('calendar', 5000), edge, settings)).toEqual({ action: 'retry' });
      expect(decideAfterError(new WorkerBusyError('rss over limit', 200), pastBudget(), settings)).toEqual({ action: 'retry' });
    });

    it('fails, not permanently, on the last attempt', () => {
      expect(decideAfterError(new CircuitOpenError('calendar', 5000), pastBudget(lastAttempt), settings)).toEqual({ action: 'fail', permanent: false });
    });

    it('treats a zero budget as already used up', () => {
      expect(decideAfterError(new CircuitOpenError('calendar', 5000), facts(), { maxWaitMs: 0 })).toEqual({ action: 'retry' });
    });
  });

  describe('a RateLimitedError', () => {
    it('waits exactly the Retry-After within the budget: it is the minimum, never shortened or floored', () => {
      expect(decideAfterError(new RateLimitedError('google-calendar', 30_000), facts(), settings)).toEqual({
        action: 'wait',
        delayMs: 30_000,
        reason: 'google-calendar rate limited',
      });
      expect(decideAfterError(new RateLimitedError('google-calendar', 200), facts(), settings)).toMatchObject({ action: 'wait', delayMs: 200 });
    });

    it('waits 5 s when the dependency gave no Retry-After', () => {
      expect(decideAfterError(new RateLimitedError('google-calendar', undefined), facts(), settings)).toEqual({
        action: 'wait',
        delayMs: 5000,
        reason: 'google-calendar rate limited',
      });
    });

    it('retries past the budget, and fails on the last attempt there', () => {
      expect(decideAfterError(new RateLimitedError('google-calendar', 30_000), pastBudget(), settings)).toEqual({ action: 'retry' });
      expect(decideAfterError(new RateLimitedError('google-calendar', undefined), pastBudget(lastAttempt), settings)).toEqual({
        action: 'fail',
        permanent: false,
      });
    });
  });

  describe('a permanent error', () => {
    it('fails a PermanentError at once, with attempts and wait budget left', () => {
      expect(decideAfterError(new PermanentError('INVALID_PAYLOAD', 'no reservationId'), facts(), settings)).toEqual({ action: 'fail', permanent: true });
    });

    it('fails a BullMQ UnrecoverableError at once, also one from another copy of BullMQ matched by name', () => {
      expect(decideAfterError(new UnrecoverableError('stop'), facts(), settings)).toEqual({ action: 'fail', permanent: true });
      const foreign = new Error('from a bundled bullmq');
      foreign.name = 'UnrecoverableError';
      expect(decideAfterError(foreign, facts(), settings)).toEqual({ action: 'fail', permanent: true });
    });

    it('fails an error isPermanent recognises at once, and leaves the others to the usual rules', () => {
      const sqlBug = Object.assign(new Error('invalid parameter value'), { code: '22023' });
      const isPermanent = (error: Error) => (error as { code?: unknown }).code === '22023';
      expect(decideAfterError(sqlBug, facts(), { ...settings, isPermanent })).toEqual({ action: 'fail', permanent: true });
      expect(decideAfterError(new Error('socket hang up'), facts(), { ...settings, isPermanent })).toEqual({ action: 'retry' });
      // Without the setting the same error is an ordinary transient failure.
      expect(decideAfterError(sqlBug, facts(), settings)).toEqual({ action: 'retry' });
    });

    it('lets permanence win over a wait: isPermanent is asked before the WaitError rule', () => {
      const isPermanent = () => true;
      expect(decideAfterError(new CircuitOpenError('calendar', 5000), facts(), { ...settings, isPermanent })).toEqual({ action: 'fail', permanent: true });
    });
  });

  describe('any other error', () => {
    it('retries a plain Error and a retryable JobfleetError while attempts are left', () => {
      expect(decideAfterError(new Error('boom'), facts(), settings)).toEqual({ action: 'retry' });
      expect(decideAfterError(new DependencyUnavailableError('google-calendar', 'HTTP 503'), facts({ attemptsMade: 3 }), settings)).toEqual({ action: 'retry' });
      expect(decideAfterError(new AttemptTimeoutError(1000), facts(), settings)).toEqual({ action: 'retry' });
    });

    it('fails, not permanently, on the last attempt, within the budget or past it', () => {
      expect(decideAfterError(new Error('boom'), facts(lastAttempt), settings)).toEqual({ action: 'fail', permanent: false });
      expect(decideAfterError(new Error('boom'), pastBudget(lastAttempt), settings)).toEqual({ action: 'fail', permanent: false });
    });
  });
});

describe('retryOrFail', () => {
  it('fails when this attempt is the last, treating attempts below 1 as 1', () => {
    expect(retryOrFail({ attemptsMade: 0, maxAttempts: 2 })).toEqual({ action: 'retry' });
    expect(retryOrFail({ attemptsMade: 1, maxAttempts: 2 })).toEqual({ action: 'fail', permanent: false });
    expect(retryOrFail({ attemptsMade: 0, maxAttempts: 1 })).toEqual({ action: 'fail', permanent: false });
    expect(retryOrFail({ attemptsMade: 0, maxAttempts: 0 })).toEqual({ action: 'fail', permanent: false });
  });
});
