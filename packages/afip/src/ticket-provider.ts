import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import { WsaaAlreadyAuthenticatedError, WsaaTicketLostError } from './errors';
import { buildLoginTicketRequest, signLoginTicketRequest, type AccessTicket, type WsaaClient, type WsaaCredentials } from './wsaa';

export interface TicketProviderOptions {
  redis: Redis | Cluster;
  /** Prefix of the cache keys (the fleet's Redis prefix); the key is `<keyPrefix>:afip-wsaa:ticket:<tenant>:<cuit>:<service>`. */
  keyPrefix: string;
  wsaa: WsaaClient;
  /** The certificate and key of the tenant's issuer, which represent its CUIT before AFIP. */
  credentials: (issuer: IssuerRef) => WsaaCredentials | Promise<WsaaCredentials>;
  /**
   * Runs `fn` while holding the fleet-wide lock `key`, so one worker logs in while the others
   * wait and then find the ticket in the cache.
   */
  withLock: <T>(key: string, fn: () => Promise<T>) => Promise<T>;
  /** WSAA service name the ticket is for. Default `wsfe`. */
  service?: string;
  /**
   * A new ticket is asked for this long before the cached one expires. Default 600 (10 minutes).
   * If WSAA refuses (the old one is still valid to AFIP), the old one is used until it expires.
   */
  refreshMarginSeconds?: number;
  /** While AFIP holds a ticket the fleet lost, how often one worker tries the login again. Default 300 000. */
  lostTicketRecheckMs?: number;
  /** Told how each ticket asked for was served (see TicketOutcome), e.g. to count them. */
  onTicket?: (outcome: TicketOutcome) => void;
}

/**
 * - `cached`: from the shared cache;
 * - `issued`: a login issued a new ticket;
 * - `kept`: logins are refused while the cached ticket is still valid to AFIP, which is used;
 * - `lost`: AFIP holds a ticket the fleet lost; logins are refused, the caller waits (WsaaTicketLostError).
 * A login that fails otherwise (WSAA down) reports nothing: the dependency's own metrics tell.
 */
export type TicketOutcome = 'cached' | 'issued' | 'kept' | 'lost';

/** An issuing CUIT as one tenant owns it: tickets are cached per tenant and CUIT, never shared across tenants. */
export interface IssuerRef {
  tenantId: string;
  cuit: number;
}

export interface TicketProvider {
  /**
   * A valid ticket for the issuer: from the shared cache, or from one WSAA login for the whole fleet.
   * Throws `WsaaTicketLostError` (wait, no attempt spent) while AFIP refuses logins because of a
   * ticket the fleet lost.
   */
  getTicket(issuer: IssuerRef): Promise<AccessTicket>;
  /**
   * Drops the cached ticket, for when WSFE refused it (error 600) before its time. The next
   * `getTicket` logs in again; WSAA may still answer alreadyAuthenticated until the ticket expires.
   */
  invalidate(issuer: IssuerRef): Promise<void>;
}

/** TRA validity: WSAA refuses a TRA generated in the future, so it starts a little in the past for clock skew. */
const TRA_CLOCK_SKEW_SECONDS = 60;
const TRA_TTL_SECONDS = 600;
/** A cached ticket is not handed out in its last seconds: a WSFE call made with it could arrive after it expired. */
const EXPIRY_SAFETY_MS = 5000;
/** AFIP's longest ticket lifetime: a lost ticket blocks logins at most this long after its login started. */
const MAX_TICKET_LIFETIME_MS = 12 * 3600_000;
const MIN_RECHECK_MS = 1000;

const cachedTicketSchema = z.object({
  token: z.string().min(1),
  sign: z.string().min(1),
  expiresAt: z.iso.datetime({ offset: true }).transform((value) => new Date(value)),
  generatedAt: z.iso.datetime({ offset: true }).transform((value) => new Date(value)),
});

/**
 * WSAA tickets shared by the fleet through Redis. WSAA issues one ticket per certificate and
 * service at a time (a second login while it is valid is refused), so every worker must use the
 * same cached one, and a refresh must happen once, under a lock. A login that WSAA refuses marks
 * the key "blocked" in Redis for a while, so the fleet does not hammer WSAA with refused logins.
 */
export function createTicketProvider(options: TicketProviderOptions): TicketProvider {
  const { redis, keyPrefix, wsaa, credentials, withLock, service = 'wsfe', refreshMarginSeconds = 600 } = options;
  const report = (outcome: TicketOutcome): void => options.onTicket?.(outcome);
  const recheckMs = Math.max(MIN_RECHECK_MS, options.lostTicketRecheckMs ?? 300_000);
  const key = (kind: 'ticket' | 'blocked' | 'login-started', issuer: IssuerRef) =>
    `${keyPrefix}:afip-wsaa:${kind}:${issuer.tenantId}:${issuer.cuit}:${service}`;
  const dueForRefresh = (ticket: AccessTicket) => ticket.expiresAt.getTime() - refreshMarginSeconds * 1000 <= Date.now();

  /** The cached ticket while it can still be used, due for refresh or not. */
  async function readCache(issuer: IssuerRef): Promise<AccessTicket | undefined> {
    const raw = await redis.get(key('ticket', issuer));
    if (raw === null) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return undefined; // unreadable entry: log in again and overwrite it
    }
    const parsed = cachedTicketSchema.safeParse(json);
    if (!parsed.success || parsed.data.expiresAt.getTime() - EXPIRY_SAFETY_MS <= Date.now()) return undefined;
    return parsed.data;
  }

  /** When logins are refused: until when, and for how much longer before the next try. */
  async function readBlock(issuer: IssuerRef): Promise<{ expiresBy: Date; retryAfterMs: number } | undefined> {
    const blockedKey = key('blocked', issuer);
    const [value, remaining] = await Promise.all([redis.get(blockedKey), redis.pttl(blockedKey)]);
    if (value === null || remaining <= 0) return undefined;
    return { expiresBy: new Date(Number(value)), retryAfterMs: remaining };
  }

  /** What the fleet uses while logins are blocked: the ticket it still has, or a wait. */
  function whileBlocked(issuer: IssuerRef, cached: AccessTicket | undefined, block: { expiresBy: Date; retryAfterMs: number }): AccessTicket {
    report(cached ? 'kept' : 'lost');
    if (cached) return cached;
    throw new WsaaTicketLostError(issuer.cuit, service, block.expiresBy, block.retryAfterMs);
  }

  async function login(issuer: IssuerRef, cached: AccessTicket | undefined): Promise<AccessTicket> {
    const tra = buildLoginTicketRequest({
      service,
      now: new Date(Date.now() - TRA_CLOCK_SKEW_SECONDS * 1000),
      ttlSeconds: TRA_TTL_SECONDS + TRA_CLOCK_SKEW_SECONDS,
    });
    const signed = signLoginTicketRequest(tra, await credentials(issuer));
    // Recorded before the call: if this worker dies or times out after WSAA issued the ticket,
    // the next login attempt learns when the lost ticket expires at the latest.
    const startedKey = key('login-started', issuer);
    const previousStart = await redis.set(startedKey, String(Date.now()), 'PX', MAX_TICKET_LIFETIME_MS, 'GET');
    try {
      const ticket = await wsaa.login(signed);
      await store(issuer, ticket);
      report('issued');
      return ticket;
    } catch (error) {
      if (!(error instanceof WsaaAlreadyAuthenticatedError)) throw error;
      // This attempt issued nothing: the refused ticket is the previous attempt's.
      if (previousStart === null) await redis.del(startedKey);
      else await redis.set(startedKey, previousStart, 'PX', Math.max(1, Number(previousStart) + MAX_TICKET_LIFETIME_MS - Date.now()));
      if (cached) {
        // An early refresh refused: the ticket we have stays valid, so use it until it expires.
        await block(issuer, cached.expiresAt.getTime(), cached.expiresAt.getTime() - Date.now());
        report('kept');
        return cached;
      }
      const expiresBy = (previousStart === null ? Date.now() : Number(previousStart)) + MAX_TICKET_LIFETIME_MS;
      const retryAfterMs = Math.max(MIN_RECHECK_MS, Math.min(expiresBy - Date.now(), recheckMs));
      await block(issuer, expiresBy, retryAfterMs);
      report('lost');
      throw new WsaaTicketLostError(issuer.cuit, service, new Date(expiresBy), retryAfterMs, { cause: error });
    }
  }

  async function block(issuer: IssuerRef, expiresBy: number, forMs: number): Promise<void> {
    if (forMs > 0) await redis.set(key('blocked', issuer), String(expiresBy), 'PX', Math.ceil(forMs));
  }

  async function store(issuer: IssuerRef, ticket: AccessTicket): Promise<void> {
    const ttlMs = ticket.expiresAt.getTime() - EXPIRY_SAFETY_MS - Date.now();
    if (ttlMs <= 0) return; // already expiring: nothing worth sharing
    const value = JSON.stringify({
      token: ticket.token,
      sign: ticket.sign,
      expiresAt: ticket.expiresAt.toISOString(),
      generatedAt: ticket.generatedAt.toISOString(),
    });
    await redis.set(key('ticket', issuer), value, 'PX', ttlMs);
    await redis.del(key('blocked', issuer));
  }

  return {
    async getTicket(issuer) {
      const cached = await readCache(issuer);
      if (cached && !dueForRefresh(cached)) {
        report('cached');
        return cached;
      }
      const blocked = await readBlock(issuer);
      if (blocked) return whileBlocked(issuer, cached, blocked);
      return withLock(`afip-wsaa:${issuer.tenantId}:${issuer.cuit}:${service}`, async () => {
        // Whoever held the lock before us may have logged in (or been refused) already.
        const current = await readCache(issuer);
        if (current && !dueForRefresh(current)) {
          report('cached');
          return current;
        }
        const blockedNow = await readBlock(issuer);
        if (blockedNow) return whileBlocked(issuer, current, blockedNow);
        return login(issuer, current);
      });
    },
    async invalidate(issuer) {
      await redis.del(key('ticket', issuer));
    },
  };
}
