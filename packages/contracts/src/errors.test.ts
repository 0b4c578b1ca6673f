import { runInNewContext } from 'node:vm';
import { DependencyUnreachableError, DependencyWaitError, parseRetryAfter } from './errors';

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP-dates, and nothing else', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(' 0 ')).toBe(0);
    const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
    expect(parseRetryAfter(inTenSeconds)).toBeGreaterThan(8000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT')).toBe(0);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('DependencyUnreachableError', () => {
  it("says why from its cause's message, an error of another realm included, and is a wait, not a spent attempt", () => {
    const foreign = runInNewContext('new Error("connect ECONNREFUSED 127.0.0.1:5432")') as unknown;
    expect(foreign instanceof Error).toBe(false);
    const error = new DependencyUnreachableError('postgres', 2000, { cause: foreign });
    expect(error.message).toBe('postgres unreachable: connect ECONNREFUSED 127.0.0.1:5432');
    expect(error).toBeInstanceOf(DependencyWaitError);
    expect(error.retryAfterMs).toBe(2000);
    expect(new DependencyUnreachableError('redis', 1000, { cause: 'closed' }).message).toBe('redis unreachable');
  });
});
