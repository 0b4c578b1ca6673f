import { createTestCertificate } from '@jobfleet/afip/simulator';
import { generateKeyringEntry, parseKeyring, SecretDecryptionError, SecretKeyUnavailableError } from '@jobfleet/secrets';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { afipIssuerRepository, ConnectionError, googleConnectionRepository, reencryptConnectionSecrets } from './connections';

// Valid CUITs (mod-11 check digit), one per issuer in this file.
const CUIT_ACME = 30712345671;
const CUIT_ACME_2 = 30711111111;
const CUIT_GLOBEX = 30709876542;
const CUIT_OTHER = 30500010912;

const k1 = generateKeyringEntry('k1');
const k2 = generateKeyringEntry('k2');
const keyring = parseKeyring(k1);

/** The base64 lines of a PEM, without its BEGIN/END armour: what must never be found in a row. */
function pemBody(pem: string): string[] {
  return pem.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----'));
}

async function thrown(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('tenant connections in Postgres', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });
  const rawRows = (table: 'afip_issuers' | 'google_connections') =>
    testDb.database.rows<{ json: string }>(sql`select row_to_json(t)::text as json from ${sql.identifier(table)} t`).then((rows) => rows.map((r) => r.json));

  it('stores no plaintext certificate, key, refresh token or client secret in any row', async () => {
    const { db } = testDb.database;
    const issuer = createTestCertificate({ cuit: CUIT_ACME });
    const view = await afipIssuerRepository.add(db, keyring, { tenantId: 'acme', cuit: CUIT_ACME, ...issuer });
    const serviceAccount = createTestCertificate({ cuit: CUIT_OTHER }).privateKeyPem;
    const oauth = { kind: 'oauth-refresh-token' as const, clientId: 'acme-client.apps.example.com', clientSecret: 'GOCSPX-acme-client-secret-3f9a', refreshToken: '1//acme-refresh-token-9b1c7e' };
    await googleConnectionRepository.add(db, keyring, { tenantId: 'acme', credential: oauth, access: { policy: 'allowlist', calendars: ['acme@example.com'] } });
    await googleConnectionRepository.add(db, keyring, {
      tenantId: 'globex',
      credential: { kind: 'service-account', clientEmail: 'sync@globex.iam.example.com', privateKey: serviceAccount },
      access: { policy: 'credential' },
    });

    const issuers = await rawRows('afip_issuers');
    expect(issuers).toHaveLength(1);
    const secrets = [...pemBody(issuer.certificatePem), ...pemBody(issuer.privateKeyPem), ...pemBody(serviceAccount), oauth.clientSecret, oauth.refreshToken];
    const rows = [...issuers, ...(await rawRows('google_connections'))];
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).not.toMatch(/BEGIN|PRIVATE KEY|CERTIFICATE/);
      for (const secret of secrets) expect(row).not.toContain(secret);
    }
    // The non-secret facts are there, and the secret round-trips through the keyring.
    expect(issuers[0]).toContain(view.certificate.fingerprintSha256);
    expect(rows.join('\n')).toContain(oauth.clientId);
    expect(await afipIssuerRepository.credentials(db, keyring, 'acme', CUIT_ACME)).toEqual(issuer);
    expect((await googleConnectionRepository.credential(db, keyring, 'acme'))?.credential).toEqual(oauth);
  });

  it("refuses B a CUIT that A owns (409), and B does not own it afterwards", async () => {
    const { db } = testDb.database;
    const error = await thrown(() => afipIssuerRepository.add(db, keyring, { tenantId: 'globex', cuit: CUIT_ACME, ...createTestCertificate({ cuit: CUIT_ACME }) }));
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ status: 409 });
    expect(await afipIssuerRepository.isOwnedBy(db, 'globex', CUIT_ACME)).toBe(false);
    expect(await afipIssuerRepository.isOwnedBy(db, 'acme', CUIT_ACME)).toBe(true);
    expect(await afipIssuerRepository.list(db, 'globex')).toEqual([]);
    expect(await afipIssuerRepository.credentials(db, keyring, 'globex', CUIT_ACME)).toBeUndefined();
    // Neither can B rotate or remove it.
    expect(await thrown(() => afipIssuerRepository.rotate(db, keyring, { tenantId: 'globex', cuit: CUIT_ACME, ...createTestCertificate({ cuit: CUIT_ACME }) }))).toMatchObject({ status: 404 });
    expect(await thrown(() => afipIssuerRepository.remove(db, { tenantId: 'globex', cuit: CUIT_ACME }))).toMatchObject({ status: 404 });
    expect(await afipIssuerRepository.isOwnedBy(db, 'acme', CUIT_ACME)).toBe(true);
    // A second add by the owner is refused too: rotate is the way to replace a certificate.
    expect(await thrown(() => afipIssuerRepository.add(db, keyring, { tenantId: 'acme', cuit: CUIT_ACME, ...createTestCertificate({ cuit: CUIT_ACME }) }))).toMatchObject({ status: 409 });
  });

  it("does not open a sealed secret copied into another tenant's or another CUIT's row", async () => {
    const { db } = testDb.database;
    await afipIssuerRepository.add(db, keyring, { tenantId: 'globex', cuit: CUIT_GLOBEX, ...createTestCertificate({ cuit: CUIT_GLOBEX }) });
    await afipIssuerRepository.add(db, keyring, { tenantId: 'acme', cuit: CUIT_ACME_2, ...createTestCertificate({ cuit: CUIT_ACME_2 }) });
    const copyIssuerSecret = (to: number) =>
      db.execute(sql`update afip_issuers set secret = (select secret from afip_issuers where cuit = ${CUIT_ACME}) where cuit = ${to}`);
    await copyIssuerSecret(CUIT_GLOBEX);
    await copyIssuerSecret(CUIT_ACME_2);
    for (const [tenantId, cuit] of [['globex', CUIT_GLOBEX], ['acme', CUIT_ACME_2]] as const) {
      const error = await thrown(() => afipIssuerRepository.credentials(db, keyring, tenantId, cuit));
      expect(error).toBeInstanceOf(SecretDecryptionError);
      expect(error).toMatchObject({ reason: 'authentication' });
    }

    await db.execute(sql`update google_connections set secret = (select secret from google_connections where tenant_id = 'acme') where tenant_id = 'globex'`);
    expect(await thrown(() => googleConnectionRepository.credential(db, keyring, 'globex'))).toBeInstanceOf(SecretDecryptionError);
    // The original still opens where it belongs.
    expect((await googleConnectionRepository.credential(db, keyring, 'acme'))?.credential).toMatchObject({ kind: 'oauth-refresh-token' });
    expect(await afipIssuerRepository.credentials(db, keyring, 'acme', CUIT_ACME)).toBeDefined();
  });

  describe('certificate checks', () => {
    it('refuses a key that does not belong to the certificate (422), on add and on rotate', async () => {
      const { db } = testDb.database;
      const mine = createTestCertificate({ cuit: CUIT_OTHER });
      const another = createTestCertificate({ cuit: CUIT_OTHER });
      const error = await thrown(() =>
        afipIssuerRepository.add(db, keyring, { tenantId: 'globex', cuit: CUIT_OTHER, certificatePem: mine.certificatePem, privateKeyPem: another.privateKeyPem }),
      );
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error).toMatchObject({ status: 422, message: 'the key does not belong to the certificate' });
      expect(await afipIssuerRepository.isOwnedBy(db, 'globex', CUIT_OTHER)).toBe(false);

      const before = await afipIssuerRepository.list(db, 'acme');
      const renewed = createTestCertificate({ cuit: CUIT_ACME });
      expect(
        await thrown(() =>
          afipIssuerRepository.rotate(db, keyring, { tenantId: 'acme', cuit: CUIT_ACME, certificatePem: renewed.certificatePem, privateKeyPem: another.privateKeyPem }),
        ),
      ).toMatchObject({ status: 422 });
      expect(await afipIssuerRepository.list(db, 'acme')).toEqual(before);
    });

    it('refuses a certificate that names another CUIT (422)', async () => {
      const { db } = testDb.database;
      const error = await thrown(() => afipIssuerRepository.add(db, keyring, { tenantId: 'globex', cuit: CUIT_OTHER, ...createTestCertificate({ cuit: CUIT_ACME }) }));
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error).toMatchObject({ status: 422, message: `the certificate is for CUIT ${CUIT_ACME}, not ${CUIT_OTHER}` });
      expect(await afipIssuerRepository.isOwnedBy(db, 'globex', CUIT_OTHER)).toBe(false);
    });

    it('refuses text that is not a PEM certificate or key (422)', async () => {
      const { db } = testDb.database;
      const good = createTestCertificate({ cuit: CUIT_OTHER });
      expect(await thrown(() => afipIssuerRepository.add(db, keyring, { tenantId: 'globex', cuit: CUIT_OTHER, ...good, certificatePem: 'not a certificate' }))).toMatchObject({
        status: 422,
        message: 'the certificate is not a PEM X.509 certificate',
      });
      expect(await thrown(() => afipIssuerRepository.add(db, keyring, { tenantId: 'globex', cuit: CUIT_OTHER, ...good, privateKeyPem: 'not a key' }))).toMatchObject({
        status: 422,
        message: 'the key is not a PEM private key',
      });
    });
  });
});

describe('re-encrypting connection secrets under a new key', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('re-wraps every row under the active key, after which the old key alone opens nothing; a second run re-wraps none', async () => {
    const { db } = testDb.database;
    const issuers = { acme: createTestCertificate({ cuit: CUIT_ACME }), globex: createTestCertificate({ cuit: CUIT_GLOBEX }) };
    await afipIssuerRepository.add(db, keyring, { tenantId: 'acme', cuit: CUIT_ACME, ...issuers.acme });
    await afipIssuerRepository.add(db, keyring, { tenantId: 'globex', cuit: CUIT_GLOBEX, ...issuers.globex });
    const credentials = {
      acme: { kind: 'access-token' as const, token: 'token-of-acme' },
      globex: { kind: 'oauth-refresh-token' as const, clientId: 'globex-client', clientSecret: 'globex-secret', refreshToken: 'globex-refresh' },
    };
    for (const tenantId of ['acme', 'globex'] as const) {
      await googleConnectionRepository.add(db, keyring, { tenantId, credential: credentials[tenantId], access: { policy: 'credential' } });
    }
    const keyIds = async () => ({
      afip: await testDb.database.rows<{ key_id: string; kid: string }>(sql`select key_id, secret->>'kid' as kid from afip_issuers`),
      google: await testDb.database.rows<{ key_id: string; kid: string }>(sql`select key_id, secret->>'kid' as kid from google_connections`),
    });
    expect(await keyIds()).toEqual({ afip: Array(2).fill({ key_id: 'k1', kid: 'k1' }), google: Array(2).fill({ key_id: 'k1', kid: 'k1' }) });

    const both = parseKeyring(`${k1},${k2}`);
    expect(both.activeKeyId).toBe('k2');
    expect(await reencryptConnectionSecrets(db, both)).toEqual({ afipIssuers: 2, googleConnections: 2 });
    expect(await keyIds()).toEqual({ afip: Array(2).fill({ key_id: 'k2', kid: 'k2' }), google: Array(2).fill({ key_id: 'k2', kid: 'k2' }) });
    const views = await afipIssuerRepository.list(db, 'acme');
    expect(views.map((v) => v.keyId)).toEqual(['k2']);

    const onlyK2 = parseKeyring(k2);
    const onlyK1 = parseKeyring(k1);
    for (const tenantId of ['acme', 'globex'] as const) {
      const cuit = tenantId === 'acme' ? CUIT_ACME : CUIT_GLOBEX;
      expect(await afipIssuerRepository.credentials(db, onlyK2, tenantId, cuit)).toEqual(issuers[tenantId]);
      expect((await googleConnectionRepository.credential(db, onlyK2, tenantId))?.credential).toEqual(credentials[tenantId]);
      expect(await thrown(() => afipIssuerRepository.credentials(db, onlyK1, tenantId, cuit))).toBeInstanceOf(SecretKeyUnavailableError);
      expect(await thrown(() => googleConnectionRepository.credential(db, onlyK1, tenantId))).toBeInstanceOf(SecretKeyUnavailableError);
    }

    expect(await reencryptConnectionSecrets(db, both)).toEqual({ afipIssuers: 0, googleConnections: 0 });
    expect(await reencryptConnectionSecrets(db, onlyK2)).toEqual({ afipIssuers: 0, googleConnections: 0 });
  });
});
