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

  const secretFields = [
    'privateKeyPem',
    'privateKey',
    'private_key',
    'refreshToken',
    'refresh_token',
    'clientSecret',
    'client_secret',
    'accessToken',
    'access_token',
    'secret',
    'password',
    'secretAccessKey',
  ];

  it.each(secretFields)('redacts %s at the top level and one level down', (field) => {
    const out = captureLogs();
    out.logger.info({ [field]: `top-${field}-value`, connection: { tenantId: 'acme', [field]: `nested-${field}-value` } }, 'connect');
    const [line] = out.lines();
    expect(line).toMatchObject({ [field]: '[redacted]', connection: { tenantId: 'acme', [field]: '[redacted]' } });
    expect(JSON.stringify(line)).not.toContain('-value');
  });

  it('redacts a Google service-account key and an OAuth token response logged whole', () => {
    const out = captureLogs();
    const serviceAccount = { type: 'service_account', client_email: 'sync@acme.iam', private_key: '-----BEGIN PRIVATE KEY-----\nMIIE' };
    const tokens = { access_token: 'ya29.a0', refresh_token: '1//0g', expires_in: 3599 };
    out.logger.info({ serviceAccount, tokens, client_secret: 'GOCSPX-top' }, 'google');
    const [line] = out.lines();
    expect(line).toMatchObject({
      serviceAccount: { type: 'service_account', client_email: 'sync@acme.iam', private_key: '[redacted]' },
      tokens: { access_token: '[redacted]', refresh_token: '[redacted]', expires_in: 3599 },
      client_secret: '[redacted]',
    });
    expect(JSON.stringify(line)).not.toMatch(/BEGIN PRIVATE KEY|ya29|1\/\/0g|GOCSPX/);
  });

  it('redacts the Authorization and x-api-key headers of a request', () => {
    const out = captureLogs();
    out.logger.info({ req: { url: '/jobs', headers: { authorization: 'Basic YWRtaW46cHc=', 'x-api-key': 'jf_live_1', host: 'api' } } }, 'request');
    const [line] = out.lines();
    expect(line).toMatchObject({ req: { url: '/jobs', headers: { authorization: '[redacted]', 'x-api-key': '[redacted]', host: 'api' } } });
    expect(JSON.stringify(line)).not.toMatch(/YWRtaW46cHc|jf_live_1/);
  });

  it('keeps the message and stack of an err logged beside secrets, redacting only its secret fields', () => {
    const out = captureLogs();
    const err = Object.assign(new Error('AFIP login failed'), { code: 'WSAA_REJECTED', privateKeyPem: '-----BEGIN PRIVATE KEY-----' });
    out.logger.error({ err, connection: { cuit: '20123456789', privateKeyPem: '-----BEGIN PRIVATE KEY-----' } }, 'login failed');
    const [line] = out.lines();
    expect(line?.err).toMatchObject({
      type: 'Error',
      message: 'AFIP login failed',
      code: 'WSAA_REJECTED',
      privateKeyPem: '[redacted]',
      stack: expect.stringMatching(/^Error: AFIP login failed\n\s+at .*logger\.test\.ts/),
    });
    expect(line?.connection).toEqual({ cuit: '20123456789', privateKeyPem: '[redacted]' });
    expect(JSON.stringify(line)).not.toContain('BEGIN PRIVATE KEY');
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
