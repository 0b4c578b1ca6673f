import type { IssuerRef, WsaaCredentials } from '@jobfleet/afip';
import type { CalendarClient, CalendarCredential } from '@jobfleet/calendar';
import { PermanentError } from '@jobfleet/contracts';
import { afipIssuerRepository, googleConnectionRepository, mayWriteCalendar, type CalendarAccess, type Db } from '@jobfleet/db';
import type { DependencyGuard } from '@jobfleet/resilience';
import type { Keyring } from '@jobfleet/secrets';
import { LRUCache } from 'lru-cache';

/**
 * What a worker acts through on a tenant's behalf, resolved per tenant at the edge of the effect:
 * the tenant's own AFIP certificates and its own Google credential, read from Postgres (and
 * decrypted) on first use, then cached for `cacheMs` so a rotated or removed connection takes
 * effect within that time. Caches are bounded: idle tenants cost nothing.
 */
export interface TenantConnections {
  /** Whether the tenant owns an AFIP issuer with this CUIT. */
  ownsIssuer(tenantId: string, cuit: number): Promise<boolean>;
  /** The issuer's certificate and key; a PermanentError when the tenant does not own the CUIT. */
  issuerCredentials(issuer: IssuerRef): Promise<WsaaCredentials>;
  /**
   * A Calendar client acting as the tenant, checked against its calendar access: a PermanentError
   * without a connection or for a calendar the tenant may not write to, before any call to Google.
   */
  calendarFor(tenantId: string, calendarId: string): Promise<CalendarClient>;
}

export interface TenantConnectionsDeps {
  db: Db;
  keyring: Keyring;
  /** Builds the (guarded) Calendar client of one credential. */
  createCalendarClient(credential: CalendarCredential): CalendarClient;
  /** Connection reads go through the Postgres guard like every other statement of a job. */
  postgres: DependencyGuard;
  cacheMs: number;
  /** Tenants whose connections are held at once per process. */
  maxTenants?: number;
}

const DEFAULT_MAX_TENANTS = 1000;

interface ResolvedCalendar {
  client: CalendarClient;
  access: CalendarAccess;
}

export function createTenantConnections(deps: TenantConnectionsDeps): TenantConnections {
  const { db, keyring, postgres } = deps;
  const max = deps.maxTenants ?? DEFAULT_MAX_TENANTS;
  // A TTL of 0 would mean "forever" to lru-cache; 1 ms is as good as no cache.
  const ttl = Math.max(1, deps.cacheMs);
  const read = <T>(operation: string, statement: () => Promise<T>) => postgres.call(operation, statement, { idempotent: true });

  const issuers = new LRUCache<string, WsaaCredentials | 'none'>({
    max,
    ttl,
    fetchMethod: async (key) => {
      const [tenantId, cuit] = JSON.parse(key) as [string, number];
      return (await read('loadAfipIssuer', () => afipIssuerRepository.credentials(db, keyring, tenantId, cuit))) ?? 'none';
    },
  });
  const calendars = new LRUCache<string, ResolvedCalendar | 'none'>({
    max,
    ttl,
    fetchMethod: async (tenantId) => {
      const connection = await read('loadGoogleConnection', () => googleConnectionRepository.credential(db, keyring, tenantId));
      return connection ? { client: deps.createCalendarClient(connection.credential), access: connection.access } : 'none';
    },
  });

  // A refusal fails the job for good, so it is never made on a cached answer: that may predate the
  // connection the API has just admitted the job on (an issuer added, a calendar allowed).
  async function issuer(ref: IssuerRef): Promise<WsaaCredentials | undefined> {
    const key = JSON.stringify([ref.tenantId, ref.cuit]);
    let found = await issuers.fetch(key);
    if (found === 'none') found = await issuers.fetch(key, { forceRefresh: true });
    return found === 'none' ? undefined : found;
  }

  return {
    async ownsIssuer(tenantId, cuit) {
      return (await issuer({ tenantId, cuit })) !== undefined;
    },
    async issuerCredentials(ref) {
      const credentials = await issuer(ref);
      if (credentials === undefined) {
        throw new PermanentError('AFIP_ISSUER_NOT_OWNED', `tenant ${ref.tenantId} has no AFIP issuer with CUIT ${ref.cuit}`, { details: { cuit: ref.cuit } });
      }
      return credentials;
    },
    async calendarFor(tenantId, calendarId) {
      let resolved = await calendars.fetch(tenantId);
      if (resolved === undefined || resolved === 'none' || !mayWriteCalendar(resolved.access, calendarId)) {
        resolved = await calendars.fetch(tenantId, { forceRefresh: true });
      }
      if (resolved === undefined || resolved === 'none') {
        throw new PermanentError('GOOGLE_CONNECTION_MISSING', `tenant ${tenantId} has no Google Calendar connection`);
      }
      if (!mayWriteCalendar(resolved.access, calendarId)) {
        throw new PermanentError('CALENDAR_NOT_ALLOWED', `tenant ${tenantId} may not write to calendar ${calendarId}`, { details: { calendarId } });
      }
      return resolved.client;
    },
  };
}
