import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCertificate } from '@jobfleet/afip/simulator';
import { afipIssuerRepository, googleConnectionRepository } from '@jobfleet/db';
import { generateKeyringEntry, parseKeyring, SecretKeyUnavailableError } from '@jobfleet/secrets';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startEntryPoint, type RunningProcess } from '../support/processes';

// Valid CUITs (mod-11 check digit).
const CUIT = 30712345671;
const IMPORTED = [30709876542, 30500010912] as const;

// Each test runs the CLI (a fresh tsx process, seconds each on a busy machine) up to four times.
const CLI_TEST_TIMEOUT_MS = 120_000;

const k1 = generateKeyringEntry('k1');
const k2 = generateKeyringEntry('k2');

/** The base64 lines of a PEM, without its armour. */
const pemBody = (pem: string) => pem.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----'));

// `npm run jobfleet -- …` as an operator runs it: a real process against this file's database.
describe('connections CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobfleet-cli-'));
  const running = new Set<RunningProcess>();
  let testDb: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
    env = { NODE_ENV: 'test', LOG_LEVEL: 'warn', DATABASE_URL: testDb.url, SECRETS_KEYS: k1 };
  });
  afterAll(async () => {
    for (const child of running) await child.kill('SIGKILL');
    await testDb.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
    const child = startEntryPoint('apps/standalone/src/cli.ts', { ...env, ...extraEnv }, args);
    running.add(child);
    const { code } = await child.exited;
    running.delete(child);
    return { code, output: child.output() };
  }
  const expectNoPem = (output: string, ...pems: string[]) => {
    expect(output).not.toMatch(/-----BEGIN|PRIVATE KEY/);
    for (const line of pems.flatMap(pemBody)) expect(output).not.toContain(line);
  };
  const keyIds = async () => ({
    afip: (await testDb.database.rows<{ key_id: string }>(sql`select key_id from afip_issuers`)).map((r) => r.key_id),
    google: (await testDb.database.rows<{ key_id: string }>(sql`select key_id from google_connections`)).map((r) => r.key_id),
  });

  const issuer = createTestCertificate({ cuit: CUIT });

  it('afip-issuer add stores the certificate and key from files, and list shows the CUIT without PEM text', async () => {
    const cert = join(dir, 'issuer.crt');
    const key = join(dir, 'issuer.key');
    writeFileSync(cert, issuer.certificatePem);
    writeFileSync(key, issuer.privateKeyPem);
    const added = await cli(['afip-issuer', 'add', 'acme', '--cuit', String(CUIT), '--cert', cert, '--key', key]);
    expect(added).toMatchObject({ code: 0 });
    expect(JSON.parse(added.output)).toMatchObject({ tenantId: 'acme', cuit: CUIT, keyId: 'k1' });
    expectNoPem(added.output, issuer.certificatePem, issuer.privateKeyPem);
    expect(await afipIssuerRepository.credentials(testDb.database.db, parseKeyring(k1), 'acme', CUIT)).toEqual(issuer);

    const listed = await cli(['afip-issuer', 'list', 'acme']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.output)).toEqual([expect.objectContaining({ cuit: CUIT, certificate: expect.objectContaining({ subject: expect.stringContaining(`CUIT ${CUIT}`) }) })]);
    expectNoPem(listed.output, issuer.certificatePem, issuer.privateKeyPem);

    // The same CUIT again is a refusal of the repository: exit 1 with its message.
    const again = await cli(['afip-issuer', 'add', 'acme', '--cuit', String(CUIT), '--cert', cert, '--key', key]);
    expect(again.code).toBe(1);
    expect(again.output).toContain(`CUIT ${CUIT} is already registered`);
  }, CLI_TEST_TIMEOUT_MS);

  it('afip-issuer import --dir adds every <cuit>.crt with its <cuit>.key', async () => {
    const importDir = join(dir, 'import');
    mkdirSync(importDir);
    const files = IMPORTED.map((cuit) => ({ cuit, ...createTestCertificate({ cuit }) }));
    for (const file of files) {
      writeFileSync(join(importDir, `${file.cuit}.crt`), file.certificatePem);
      writeFileSync(join(importDir, `${file.cuit}.key`), file.privateKeyPem);
    }
    const imported = await cli(['afip-issuer', 'import', 'acme', '--dir', importDir]);
    expect(imported.code).toBe(0);
    for (const cuit of IMPORTED) expect(imported.output).toMatch(new RegExp(`^added CUIT ${cuit} \\(certificate valid until \\S+\\)$`, 'm'));
    expectNoPem(imported.output, ...files.flatMap((f) => [f.certificatePem, f.privateKeyPem]));

    const keyring = parseKeyring(k1);
    for (const file of files) {
      expect(await afipIssuerRepository.credentials(testDb.database.db, keyring, 'acme', file.cuit)).toEqual({ certificatePem: file.certificatePem, privateKeyPem: file.privateKeyPem });
    }
    expect((await afipIssuerRepository.list(testDb.database.db, 'acme')).map((i) => i.cuit).sort()).toEqual([CUIT, ...IMPORTED].sort());

    // Importing again replaces the certificates in place.
    const reimported = await cli(['afip-issuer', 'import', 'acme', '--dir', importDir]);
    expect(reimported.code).toBe(0);
    for (const cuit of IMPORTED) expect(reimported.output).toContain(`rotated CUIT ${cuit}`);
  }, CLI_TEST_TIMEOUT_MS);

  it('google-connection add stores a refresh-token credential with its calendars, and show prints no secret', async () => {
    const credential = { refreshToken: '1//cli-refresh-token-2b7d', clientId: 'cli-client.apps.example.com', clientSecret: 'GOCSPX-cli-secret-91aa' };
    const added = await cli([
      'google-connection', 'add', 'acme',
      '--refresh-token', credential.refreshToken,
      '--client-id', credential.clientId,
      '--client-secret', credential.clientSecret,
      '--calendars', 'front-desk@example.com, terrace@example.com',
    ]);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.output)).toMatchObject({
      tenantId: 'acme',
      authKind: 'oauth-refresh-token',
      principal: credential.clientId,
      access: { policy: 'allowlist', calendars: ['front-desk@example.com', 'terrace@example.com'] },
    });
    const shown = await cli(['google-connection', 'show', 'acme']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.output)).toMatchObject({ authKind: 'oauth-refresh-token', keyId: 'k1' });
    for (const output of [added.output, shown.output]) {
      expect(output).not.toContain(credential.refreshToken);
      expect(output).not.toContain(credential.clientSecret);
    }
    expect((await googleConnectionRepository.credential(testDb.database.db, parseKeyring(k1), 'acme'))?.credential).toEqual({ kind: 'oauth-refresh-token', ...credential });
  }, CLI_TEST_TIMEOUT_MS);

  it('secrets generate-key prints kid:base64 of 32 random bytes', async () => {
    const first = await cli(['secrets', 'generate-key', '2026-01']);
    const second = await cli(['secrets', 'generate-key', '2026-01']);
    expect(first.code).toBe(0);
    const entry = first.output.split('\n')[0] ?? '';
    expect(entry).toMatch(/^2026-01:[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(entry.slice('2026-01:'.length), 'base64')).toHaveLength(32);
    expect(second.output.split('\n')[0]).not.toBe(entry);
    expect(parseKeyring(entry).keyIds).toEqual(['2026-01']);
  }, CLI_TEST_TIMEOUT_MS);

  it('secrets re-encrypt, after a new key is made active, re-wraps every row under it', async () => {
    expect(await keyIds()).toEqual({ afip: ['k1', 'k1', 'k1'], google: ['k1'] });
    const rotated = await cli(['secrets', 're-encrypt'], { SECRETS_KEYS: `${k1},${k2}` });
    expect(rotated.code).toBe(0);
    expect(rotated.output).toContain('re-encrypted under key k2: 3 AFIP issuer(s), 1 Google connection(s)');
    expect(await keyIds()).toEqual({ afip: ['k2', 'k2', 'k2'], google: ['k2'] });

    // The old key can now be retired: k2 alone opens every row, k1 alone none.
    const { db } = testDb.database;
    expect(await afipIssuerRepository.credentials(db, parseKeyring(k2), 'acme', CUIT)).toEqual(issuer);
    expect((await googleConnectionRepository.credential(db, parseKeyring(k2), 'acme'))?.credential).toMatchObject({ kind: 'oauth-refresh-token' });
    await expect(afipIssuerRepository.credentials(db, parseKeyring(k1), 'acme', CUIT)).rejects.toBeInstanceOf(SecretKeyUnavailableError);

    const again = await cli(['secrets', 're-encrypt'], { SECRETS_KEYS: `${k1},${k2}` });
    expect(again.output).toContain('re-encrypted under key k2: 0 AFIP issuer(s), 0 Google connection(s)');
  }, CLI_TEST_TIMEOUT_MS);

  it('refuses a CUIT with a bad check digit: exit 2 with the reason, nothing stored', async () => {
    const before = await afipIssuerRepository.list(testDb.database.db, 'acme');
    const bad = await cli(['afip-issuer', 'add', 'acme', '--cuit', '30712345672', '--cert', join(dir, 'issuer.crt'), '--key', join(dir, 'issuer.key')]);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('--cuit: not a valid CUIT (11 digits with check digit): 30712345672');
    expect(bad.output).toContain('usage: npm run jobfleet');
    expect(await afipIssuerRepository.list(testDb.database.db, 'acme')).toEqual(before);

    // The same for a file name in an imported directory, before any of the directory is stored.
    const badDir = join(dir, 'bad-import');
    mkdirSync(badDir);
    const good = 30711111111;
    for (const cuit of [good, 30712345672]) {
      const files = createTestCertificate({ cuit });
      writeFileSync(join(badDir, `${cuit}.crt`), files.certificatePem);
      writeFileSync(join(badDir, `${cuit}.key`), files.privateKeyPem);
    }
    const badImport = await cli(['afip-issuer', 'import', 'acme', '--dir', badDir]);
    expect(badImport.code).toBe(2);
    expect(badImport.output).toContain('30712345672.crt: not a valid CUIT (11 digits with check digit)');
    expect(await afipIssuerRepository.list(testDb.database.db, 'acme')).toEqual(before);
    expect(await afipIssuerRepository.isOwnedBy(testDb.database.db, 'acme', good)).toBe(false);
  }, CLI_TEST_TIMEOUT_MS);
});
