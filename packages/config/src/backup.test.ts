import { ConfigError, loadConfig } from './config';

const targets = {
  local: { type: 'filesystem', directory: '/var/backups/jobfleet' },
  offsite: { type: 's3', bucket: 'acme-backups', prefix: 'jobfleet/', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true },
};
const nightly = { name: 'nightly', target: 'local', cron: '0 3 * * *', timezone: 'America/Argentina/Buenos_Aires', retention: { keepLast: 7 } };

function load(definitions: unknown, extra: Record<string, string> = {}) {
  return loadConfig({
    DATABASE_URL: 'postgres://app@db/app',
    BACKUP_TARGETS: JSON.stringify(targets),
    BACKUP_DEFINITIONS: typeof definitions === 'string' ? definitions : JSON.stringify(definitions),
    ...extra,
  });
}

function issuesOf(definitions: unknown, extra: Record<string, string> = {}): string {
  try {
    load(definitions, extra);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.join('\n');
    throw error;
  }
  return '';
}

describe('backup config', () => {
  it('resolves definitions with their targets and defaults (custom format, list check, the fleet database)', () => {
    const config = load([nightly, { name: 'offsite-hourly', target: 'offsite', cron: '0 * * * *', databaseUrl: 'postgres://ro@replica/app', format: 'plain' }]);
    expect(config.backup.definitions).toEqual([
      {
        ...nightly,
        databaseUrl: 'postgres://app@db/app',
        format: 'custom',
        restoreCheck: 'list',
        target: { name: 'local', type: 'filesystem', directory: '/var/backups/jobfleet' },
      },
      expect.objectContaining({
        name: 'offsite-hourly',
        format: 'plain',
        timezone: 'UTC',
        databaseUrl: 'postgres://ro@replica/app',
        target: expect.objectContaining({ type: 's3', bucket: 'acme-backups', prefix: 'jobfleet/', region: 'us-east-1' }),
      }),
    ]);
    expect(config.backup).toMatchObject({ timeoutMs: 3_600_000, maxConcurrent: 2, memoryLimitBytes: 1024 * 1024 * 1024 });
    expect(config.worker.perQueue.backup).toMatchObject({ concurrency: 2, attempts: 3 });
  });

  it('has no definitions by default', () => {
    expect(loadConfig({}).backup.definitions).toEqual([]);
  });

  it.each([
    ['an invalid cron', { ...nightly, cron: '61 * * * *' }, 'BACKUP_DEFINITIONS[0].cron: invalid cron "61 * * * *"'],
    ['an unknown target', { ...nightly, target: 'tape' }, 'BACKUP_DEFINITIONS[0].target: unknown target "tape"; known: local, offsite'],
    ['an unknown time zone', { ...nightly, timezone: 'Mars/Olympus' }, 'BACKUP_DEFINITIONS[0].timezone: unknown IANA time zone'],
    ['a name with a dot', { ...nightly, name: 'night.ly' }, 'BACKUP_DEFINITIONS[0].name'],
    ['an unknown format', { ...nightly, format: 'tar' }, 'BACKUP_DEFINITIONS[0].format'],
    ['keepLast 0', { ...nightly, retention: { keepLast: 0 } }, 'BACKUP_DEFINITIONS[0].retention.keepLast'],
    ['an unknown field', { ...nightly, schedule: '0 3 * * *' }, 'BACKUP_DEFINITIONS[0]: Unrecognized key: "schedule"'],
    ['a non-postgres URL', { ...nightly, databaseUrl: 'mysql://db/app' }, 'BACKUP_DEFINITIONS[0].databaseUrl: must be a postgres://'],
    ['a full check without a scratch server', { ...nightly, restoreCheck: 'full' }, 'BACKUP_RESTORE_SCRATCH_URL'],
    ['an invalid verify cron', { ...nightly, verify: { cron: 'weekly' } }, 'BACKUP_DEFINITIONS[0].verify.cron: invalid cron "weekly"'],
    ['a full verify without a scratch server', { ...nightly, verify: { cron: '0 5 * * 0', mode: 'full' } }, 'BACKUP_DEFINITIONS[0].verify.mode: "full" needs'],
  ])('refuses %s and names the field', (_label, definition, message) => {
    expect(issuesOf([definition])).toContain(message);
  });

  it('refuses a name defined twice, JSON that does not parse, and a target of an unknown type', () => {
    expect(issuesOf([nightly, nightly])).toContain('BACKUP_DEFINITIONS[1].name: "nightly" is defined twice');
    expect(issuesOf('[{"name": ')).toContain('BACKUP_DEFINITIONS: not valid JSON');
    expect(
      issuesOf([nightly], { BACKUP_TARGETS: JSON.stringify({ local: { type: 'ftp', host: 'x' } }) }),
    ).toContain('BACKUP_TARGETS.local.type');
  });

  it('needs a database when neither the definition nor DATABASE_URL names one', () => {
    expect(() =>
      loadConfig({ BACKUP_TARGETS: JSON.stringify(targets), BACKUP_DEFINITIONS: JSON.stringify([nightly]) }),
    ).toThrow('BACKUP_DEFINITIONS[0].databaseUrl: required when DATABASE_URL is not set');
  });

  it('wants S3 access key and secret together', () => {
    expect(issuesOf([nightly], { BACKUP_S3_ACCESS_KEY_ID: 'AKIA' })).toContain('set both or neither');
  });
});
