import { startEntryPoint } from '../support/processes';

describe('production safety', () => {
  it.each(['apps/api/src/main.ts', 'apps/worker/src/main.ts'])('%s refuses to start with the default admin secret', async (entry) => {
    const child = startEntryPoint(entry, {
      NODE_ENV: 'production',
      ADMIN_PASSWORD: 'admin',
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
      REDIS_URL: 'redis://127.0.0.1:6379',
      SECRETS_KEYS: `prod:${Buffer.alloc(32, 3).toString('base64')}`,
    });
    const { code } = await child.exited;
    expect(code).not.toBe(0);
    expect(child.output()).toMatch(/ADMIN_PASSWORD/);
  }, 30_000);
});
