import { X509Certificate, createPrivateKey, randomUUID } from 'node:crypto';
import { and, eq, ne } from 'drizzle-orm';
import { needsRewrap, openSecret, rewrapSecret, sealSecret, type Keyring, type SealedSecret } from '@jobfleet/secrets';
import { z } from 'zod';
import type { Db } from './client';
import { afipIssuers, googleConnections, type CalendarPolicy, type GoogleAuthKind } from './schema';

/**
 * Tenant-owned connections: the AFIP issuers (CUIT + certificate + key) and the Google Calendar
 * connection a tenant acts through. Secrets are sealed with the keyring (envelope encryption, the
 * row's identity as associated data) and never leave this module except to the worker that
 * makes the call; listings carry only non-secret facts.
 */

/** Why a connection change was refused; the API answers `status`, the CLI prints the message. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly status: 404 | 409 | 422,
    message: string,
  ) {
    super(message);
  }
}

export interface AfipIssuerSecret {
  certificatePem: string;
  privateKeyPem: string;
}

/** An issuer as listed: what the certificate says, never the certificate or the key. */
export interface AfipIssuerView {
  id: string;
  tenantId: string;
  cuit: number;
  keyId: string;
  certificate: { subject: string; fingerprintSha256: string; notAfter: string };
  createdAt: string;
  updatedAt: string;
}

const issuerContext = (tenantId: string, cuit: number) => `afip-issuer:${tenantId}:${cuit}`;
const googleContext = (tenantId: string) => `google-connection:${tenantId}`;

/** Checks the PEMs before they are stored: a certificate, a key that matches it, the CUIT it names. */
function inspectCertificate(cuit: number, secret: AfipIssuerSecret) {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(secret.certificatePem);
  } catch {
    throw new ConnectionError(422, 'the certificate is not a PEM X.509 certificate');
  }
  let key;
  try {
    key = createPrivateKey(secret.privateKeyPem);
  } catch {
    throw new ConnectionError(422, 'the key is not a PEM private key');
  }
  if (!certificate.checkPrivateKey(key)) throw new ConnectionError(422, 'the key does not belong to the certificate');
  // AFIP certificates name their CUIT in the subject's serialNumber ("CUIT 20123456789").
  const named = /serialNumber=CUIT (\d{11})/.exec(certificate.subject)?.[1];
  if (named !== undefined && Number(named) !== cuit) {
    throw new ConnectionError(422, `the certificate is for CUIT ${named}, not ${cuit}`);
  }
  return {
    certificateSubject: certificate.subject.replaceAll('\n', ', '),
    certificateFingerprint: certificate.fingerprint256,
    certificateNotAfter: new Date(certificate.validTo),
  };
}

type IssuerRow = typeof afipIssuers.$inferSelect;

function issuerView(row: IssuerRow): AfipIssuerView {
  return {
    id: row.id,
    tenantId: row.tenantId,
    cuit: row.cuit,
    keyId: row.keyId,
    certificate: {
      subject: row.certificateSubject,
      fingerprintSha256: row.certificateFingerprint,
      notAfter: row.certificateNotAfter.toISOString(),
    },
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

const issuerSecretSchema = z.object({ certificatePem: z.string().min(1), privateKeyPem: z.string().min(1) });

export const afipIssuerRepository = {
  /** Adds `cuit` to the tenant. A CUIT already owned, by this tenant or another, is refused (409). */
  async add(db: Db, keyring: Keyring, input: { tenantId: string; cuit: number } & AfipIssuerSecret): Promise<AfipIssuerView> {
    const facts = inspectCertificate(input.cuit, input);
    const sealed = sealSecret(keyring, JSON.stringify(issuerSecretSchema.parse(input)), issuerContext(input.tenantId, input.cuit));
    const rows = await db
      .insert(afipIssuers)
      .values({ id: randomUUID(), tenantId: input.tenantId, cuit: input.cuit, secret: sealed, keyId: sealed.kid, ...facts })
      .onConflictDoNothing({ target: afipIssuers.cuit })
      .returning();
    const row = rows[0];
    if (!row) throw new ConnectionError(409, `CUIT ${input.cuit} is already registered`);
    return issuerView(row);
  },

  /** Replaces the certificate and key of a CUIT the tenant owns (a renewed certificate). */
  async rotate(db: Db, keyring: Keyring, input: { tenantId: string; cuit: number } & AfipIssuerSecret): Promise<AfipIssuerView> {
    const facts = inspectCertificate(input.cuit, input);
    const sealed = sealSecret(keyring, JSON.stringify(issuerSecretSchema.parse(input)), issuerContext(input.tenantId, input.cuit));
    const rows = await db
      .update(afipIssuers)
      .set({ secret: sealed, keyId: sealed.kid, ...facts, updatedAt: new Date() })
      .where(and(eq(afipIssuers.tenantId, input.tenantId), eq(afipIssuers.cuit, input.cuit)))
      .returning();
    const row = rows[0];
    if (!row) throw new ConnectionError(404, `tenant ${input.tenantId} has no AFIP issuer with CUIT ${input.cuit}`);
    return issuerView(row);
  },

  async remove(db: Db, input: { tenantId: string; cuit: number }): Promise<void> {
    const rows = await db
      .delete(afipIssuers)
      .where(and(eq(afipIssuers.tenantId, input.tenantId), eq(afipIssuers.cuit, input.cuit)))
      .returning({ id: afipIssuers.id });
    if (rows.length === 0) throw new ConnectionError(404, `tenant ${input.tenantId} has no AFIP issuer with CUIT ${input.cuit}`);
  },

  async list(db: Db, tenantId: string): Promise<AfipIssuerView[]> {
    const rows = await db.select().from(afipIssuers).where(eq(afipIssuers.tenantId, tenantId)).orderBy(afipIssuers.cuit);
    return rows.map(issuerView);
  },

  /** Whether `tenantId` owns `cuit`: the one question the API asks before enqueueing an invoice. */
  async isOwnedBy(db: Db, tenantId: string, cuit: number): Promise<boolean> {
    const rows = await db
      .select({ id: afipIssuers.id })
      .from(afipIssuers)
      .where(and(eq(afipIssuers.tenantId, tenantId), eq(afipIssuers.cuit, cuit)))
      .limit(1);
    return rows.length > 0;
  },

  /** The tenant's certificate and key for `cuit`, decrypted; undefined when the tenant does not own it. */
  async credentials(db: Db, keyring: Keyring, tenantId: string, cuit: number): Promise<AfipIssuerSecret | undefined> {
    const rows = await db
      .select({ secret: afipIssuers.secret })
      .from(afipIssuers)
      .where(and(eq(afipIssuers.tenantId, tenantId), eq(afipIssuers.cuit, cuit)))
      .limit(1);
    const row = rows[0];
    if (!row) return undefined;
    return issuerSecretSchema.parse(JSON.parse(openSecret(keyring, row.secret, issuerContext(tenantId, cuit))));
  },
};

/** The credential a Google connection holds, as the calendar client needs it. */
export type GoogleCredential =
  | { kind: 'service-account'; clientEmail: string; privateKey: string }
  | { kind: 'oauth-refresh-token'; clientId: string; clientSecret: string; refreshToken: string }
  // A static bearer token: for the sandbox and tests (it expires within an hour at Google).
  | { kind: 'access-token'; token: string };

const googleCredentialSchema: z.ZodType<GoogleCredential> = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('service-account'), clientEmail: z.string().min(1), privateKey: z.string().min(1) }),
  z.strictObject({
    kind: z.literal('oauth-refresh-token'),
    clientId: z.string().min(1),
    clientSecret: z.string().min(1),
    refreshToken: z.string().min(1),
  }),
  z.strictObject({ kind: z.literal('access-token'), token: z.string().min(1) }),
]);

/** A Google service-account key file as Google downloads it (the fields we use); the API and the CLI read it. */
export const serviceAccountKeySchema = z.looseObject({
  type: z.literal('service_account'),
  client_email: z.email(),
  private_key: z
    .string()
    .max(64 * 1024)
    .regex(/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a PEM private key'),
});

export function serviceAccountCredential(key: z.output<typeof serviceAccountKeySchema>): GoogleCredential {
  return { kind: 'service-account', clientEmail: key.client_email, privateKey: key.private_key };
}

/** Which calendars a tenant may write to: a list, or whatever its credential reaches. */
export type CalendarAccess = { policy: 'allowlist'; calendars: readonly string[] } | { policy: 'credential' };

/** `credential`, or the calendars named (each once). */
export function calendarAccessOf(calendars: 'credential' | readonly string[]): CalendarAccess {
  return calendars === 'credential' ? { policy: 'credential' } : { policy: 'allowlist', calendars: [...new Set(calendars)] };
}

export interface GoogleConnectionView {
  id: string;
  tenantId: string;
  authKind: GoogleAuthKind;
  principal: string;
  access: CalendarAccess;
  keyId: string;
  createdAt: string;
  updatedAt: string;
}

type GoogleRow = typeof googleConnections.$inferSelect;

function accessOf(row: Pick<GoogleRow, 'calendarPolicy' | 'calendars'>): CalendarAccess {
  return row.calendarPolicy === 'credential' ? { policy: 'credential' } : { policy: 'allowlist', calendars: row.calendars };
}

function googleView(row: GoogleRow): GoogleConnectionView {
  return {
    id: row.id,
    tenantId: row.tenantId,
    authKind: row.authKind,
    principal: row.principal,
    access: accessOf(row),
    keyId: row.keyId,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function principalOf(credential: GoogleCredential): string {
  switch (credential.kind) {
    case 'service-account':
      return credential.clientEmail;
    case 'oauth-refresh-token':
      return credential.clientId;
    case 'access-token':
      return 'static access token';
    default:
      return credential satisfies never;
  }
}

function accessColumns(access: CalendarAccess): { calendarPolicy: CalendarPolicy; calendars: string[] } {
  return access.policy === 'credential' ? { calendarPolicy: 'credential', calendars: [] } : { calendarPolicy: 'allowlist', calendars: [...access.calendars] };
}

/** Whether a tenant with this access may write to `calendarId`. */
export function mayWriteCalendar(access: CalendarAccess, calendarId: string): boolean {
  return access.policy === 'credential' || access.calendars.includes(calendarId);
}

export const googleConnectionRepository = {
  /** A tenant has at most one Google connection: a second add is refused (409); rotate replaces it. */
  async add(db: Db, keyring: Keyring, input: { tenantId: string; credential: GoogleCredential; access: CalendarAccess }): Promise<GoogleConnectionView> {
    const credential = googleCredentialSchema.parse(input.credential);
    const sealed = sealSecret(keyring, JSON.stringify(credential), googleContext(input.tenantId));
    const rows = await db
      .insert(googleConnections)
      .values({
        id: randomUUID(),
        tenantId: input.tenantId,
        authKind: credential.kind,
        principal: principalOf(credential),
        ...accessColumns(input.access),
        secret: sealed,
        keyId: sealed.kid,
      })
      .onConflictDoNothing({ target: googleConnections.tenantId })
      .returning();
    const row = rows[0];
    if (!row) throw new ConnectionError(409, `tenant ${input.tenantId} already has a Google connection (rotate it instead)`);
    return googleView(row);
  },

  /** Replaces the credential and, when given, the calendar access. */
  async rotate(db: Db, keyring: Keyring, input: { tenantId: string; credential?: GoogleCredential; access?: CalendarAccess }): Promise<GoogleConnectionView> {
    const credential = input.credential === undefined ? undefined : googleCredentialSchema.parse(input.credential);
    const sealed = credential === undefined ? undefined : sealSecret(keyring, JSON.stringify(credential), googleContext(input.tenantId));
    const rows = await db
      .update(googleConnections)
      .set({
        ...(credential && sealed ? { authKind: credential.kind, principal: principalOf(credential), secret: sealed, keyId: sealed.kid } : {}),
        ...(input.access ? accessColumns(input.access) : {}),
        updatedAt: new Date(),
      })
      .where(eq(googleConnections.tenantId, input.tenantId))
      .returning();
    const row = rows[0];
    if (!row) throw new ConnectionError(404, `tenant ${input.tenantId} has no Google connection`);
    return googleView(row);
  },

  async remove(db: Db, tenantId: string): Promise<void> {
    const rows = await db.delete(googleConnections).where(eq(googleConnections.tenantId, tenantId)).returning({ id: googleConnections.id });
    if (rows.length === 0) throw new ConnectionError(404, `tenant ${tenantId} has no Google connection`);
  },

  async find(db: Db, tenantId: string): Promise<GoogleConnectionView | undefined> {
    const rows = await db.select().from(googleConnections).where(eq(googleConnections.tenantId, tenantId)).limit(1);
    return rows[0] && googleView(rows[0]);
  },

  /** What the API checks before enqueueing: the tenant's calendar access, undefined without a connection. */
  async access(db: Db, tenantId: string): Promise<CalendarAccess | undefined> {
    const rows = await db
      .select({ calendarPolicy: googleConnections.calendarPolicy, calendars: googleConnections.calendars })
      .from(googleConnections)
      .where(eq(googleConnections.tenantId, tenantId))
      .limit(1);
    return rows[0] && accessOf(rows[0]);
  },

  /** The decrypted credential and access, for the worker that calls Google on the tenant's behalf. */
  async credential(db: Db, keyring: Keyring, tenantId: string): Promise<{ id: string; version: string; credential: GoogleCredential; access: CalendarAccess } | undefined> {
    const rows = await db.select().from(googleConnections).where(eq(googleConnections.tenantId, tenantId)).limit(1);
    const row = rows[0];
    if (!row) return undefined;
    const credential = googleCredentialSchema.parse(JSON.parse(openSecret(keyring, row.secret, googleContext(tenantId))));
    return { id: row.id, version: row.updatedAt.toISOString(), credential, access: accessOf(row) };
  },
};

/**
 * Re-wraps every connection secret that is not under the keyring's active key (after a key is
 * added and made active), so the old key can then be retired. Safe to run again.
 */
export async function reencryptConnectionSecrets(db: Db, keyring: Keyring): Promise<{ afipIssuers: number; googleConnections: number }> {
  const issuers = await db.select().from(afipIssuers).where(ne(afipIssuers.keyId, keyring.activeKeyId));
  const google = await db.select().from(googleConnections).where(ne(googleConnections.keyId, keyring.activeKeyId));
  return {
    afipIssuers: await rewrapEach(
      keyring,
      issuers.map((row) => ({ id: row.id, secret: row.secret, context: issuerContext(row.tenantId, row.cuit) })),
      (id, sealed) => db.update(afipIssuers).set({ secret: sealed, keyId: sealed.kid }).where(eq(afipIssuers.id, id)),
    ),
    googleConnections: await rewrapEach(
      keyring,
      google.map((row) => ({ id: row.id, secret: row.secret, context: googleContext(row.tenantId) })),
      (id, sealed) => db.update(googleConnections).set({ secret: sealed, keyId: sealed.kid }).where(eq(googleConnections.id, id)),
    ),
  };
}

/** Re-wraps each secret not under the active key and saves it; how many were. */
async function rewrapEach(
  keyring: Keyring,
  rows: readonly { id: string; secret: unknown; context: string }[],
  save: (id: string, sealed: SealedSecret) => Promise<unknown>,
): Promise<number> {
  let rewrapped = 0;
  for (const row of rows) {
    if (!needsRewrap(keyring, row.secret)) continue;
    await save(row.id, rewrapSecret(keyring, row.secret, row.context));
    rewrapped += 1;
  }
  return rewrapped;
}
