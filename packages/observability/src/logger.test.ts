import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { createLogger } from './logger';
import { captureLogs } from './testing';

describe('createLogger', () => {
  it('writes one JSON object a line with the service, level label and message', () => {
    const written: string[] = [];
    const destination = { write: (line: string) => void written.push(line) };
    createLogger({ level: 'info', serviceName: 'api', destination }).info({ jobId: 'j1' }, 'hello');
    expect(written).toHaveLength(1);
    expect(written[0]?.endsWith('\n')).toBe(true);
    expect(JSON.parse(written[0] ?? '')).toEqual(
      expect.objectContaining({ service: 'api', level: 'info', msg: 'hello', jobId: 'j1', pid: process.pid, time: expect.any(String) }),
    );
  });

  it('redacts an Authorization header, an x-api-key header and apiKey, password and token fields', () => {
    const out = captureLogs();
    out.logger.info(
      {
        req: { method: 'POST', headers: { authorization: 'Bearer s3cret', 'x-api-key': 'jf_key', accept: 'json' } },
        tenant: { id: 'acme', apiKey: 'jf_live_key' },
        connector: { password: 'pw', token: 'tok', private_key: 'pk' },
        apiKey: 'top-level-key',
      },
      'request',
    );
    const [line] = out.lines();
    expect(line).toMatchObject({
      req: { method: 'POST', headers: { authorization: '[redacted]', 'x-api-key': '[redacted]', accept: 'json' } },
      tenant: { id: 'acme', apiKey: '[redacted]' },
      connector: { password: '[redacted]', token: '[redacted]', private_key: '[redacted]' },
      apiKey: '[redacted]',
    });
    expect(JSON.stringify(line)).not.toMatch(/s3cret|jf_key|jf_live_key|top-level-key/);
  });

  it("keeps an error's type, stack, code, details and cause chain", () => {
    const out = captureLogs();
    const root = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const middle = new DependencyUnavailableError('google-calendar', 'request failed', { cause: root, details: { status: 503 } });
    const err = new PermanentError('CALENDAR_REJECTED', 'calendar refused the event', { cause: middle, details: { status: 400 } });
    out.logger.error({ err, jobId: 'j1' }, 'job failed');

    const [line] = out.lines();
    expect(line?.err).toMatchObject({
      type: 'PermanentError',
      message: 'calendar refused the event',
      code: 'CALENDAR_REJECTED',
      retryable: false,
      details: { status: 400 },
      stack: expect.stringContaining('logger.test.ts'),
      cause: {
        type: 'DependencyUnavailableError',
        message: 'google-calendar: request failed',
        code: 'DEPENDENCY_UNAVAILABLE',
        dependency: 'google-calendar',
        details: { status: 503 },
        cause: { type: 'Error', message: 'socket hang up', code: 'ECONNRESET', stack: expect.stringContaining('Error: socket hang up') },
      },
    });
  });

  it('writes nothing below its level', () => {
    const out = captureLogs('warn');
    out.logger.info('quiet');
    out.logger.warn('loud');
    expect(out.lines().map((l) => l.msg)).toEqual(['loud']);
  });
});
