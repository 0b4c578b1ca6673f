import type { Redis } from 'ioredis';
import { z } from 'zod';
import { DependencyUnavailableError } from '@jobfleet/contracts';
import { WSAA_DEPENDENCY, WsaaAlreadyAuthenticatedError } from './errors';
import { buildLoginTicketRequest, signLoginTicketRequest, type AccessTicket, type WsaaClient, type WsaaCredentials } from './wsaa';

export interface TicketProviderOptions {
  redis: Redis;
  /** Prefix of the cache keys (the fleet's Redis prefix); the key is `<keyPrefix>:afip-wsaa:ticket:<cuit>:<service>`. */
  keyPrefix: string;
  wsaa: WsaaClient;
  /** The certificate and key that represent `cuit` before AFIP. */
  credentials: (cuit: number) => WsaaCredentials | Promise<WsaaCredentials>;
  /**
   * Runs `fn` while holding the fleet-wide lock `key`, so one worker logs in while the others
   * wait and then find the ticket in the cache.
   */
  withLock: <T>(key: string, fn: () => Promise<T>) => Promise<T>;
  /** WSAA service name the ticket is for. Default `wsfe`. */
  service?: string;
  /** A cached ticket is used until this long before it expires. Default 600 (10 minutes). */
  refreshMarginSeconds?: number;
}

export interface TicketProvider {
  /** A valid ticket for `cuit`: from the shared cache, or from one WSAA login for the whole fleet. */
  getTicket(cuit: number): Promise<AccessTicket>;
  /**
   * Drops the cached ticket, for when WSFE refused it (error 600) before its time. The next
   * `getTicket` logs in again; WSAA may still answer alreadyAuthenticated until the ticket expires.
   */
  invalidate(cuit: number): Promise<void>;
}

/** TRA validity: WSAA refuses a TRA generated in the future, so it starts a little in the past for clock skew. */
const TRA_CLOCK_SKEW_SECONDS = 60;
const TRA_TTL_SECONDS = 600;

const cachedTicketSchema = z.object({
  token: z.string().min(1),
  sign: z.string().min(1),
  expiresAt: z.iso.datetime({ offset: true }).transform((value) => new Date(value)),
  generatedAt: z.iso.datetime({ offset: true }).transform((value) => new Date(value)),
});

/**
 * WSAA tickets shared by the fleet through Redis. WSAA issues one ticket per certificate and
 * service at a time (a second login while it is valid is refused), so every worker must use the
 * same cached one, and a refresh must happen once, under a lock.
 */
export function createTicketProvider(options: TicketProviderOptions): TicketProvider {
  const { redis, keyPrefix, wsaa, credentials, withLock, service = 'wsfe', refreshMarginSeconds = 600 } = options;
  const cacheKey = (cuit: number) => `${keyPrefix}:afip-wsaa:ticket:${cuit}:${service}`;

  async function readCache(cuit: number): Promise<AccessTicket | undefined> {
    const raw = await redis.get(cacheKey(cuit));
    if (raw === null) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return undefined; // unreadable entry: log in again and overwrite it
    }
    const parsed = cachedTicketSchema.safeParse(json);
    if (!parsed.success || parsed.data.expiresAt.getTime() - refreshMarginSeconds * 1000 <= Date.now()) return undefined;
    return parsed.data;
  }

  async function login(cuit: number): Promise<AccessTicket> {
    const tra = buildLoginTicketRequest({
      service,
      now: new Date(Date.now() - TRA_CLOCK_SKEW_SECONDS * 1000),
      ttlSeconds: TRA_TTL_SECONDS + TRA_CLOCK_SKEW_SECONDS,
    });
    try {
      return await wsaa.login(signLoginTicketRequest(tra, await credentials(cuit)));
    } catch (error) {
      if (!(error instanceof WsaaAlreadyAuthenticatedError)) throw error;
      // AFIP holds a valid ticket we no longer have (Redis flushed, key deleted). It cannot be had
      // again before it expires: retry later, without hammering WSAA.
      throw new DependencyUnavailableError(
        WSAA_DEPENDENCY,
        `WSAA already issued a ticket for CUIT ${cuit} and service ${service} that is not in the cache (lost?); ` +
          'no new one can be obtained until it expires (up to 12 h)',
        { cause: error, details: { cuit, service, reason: 'alreadyAuthenticated' } },
      );
    }
  }

  async function store(cuit: number, ticket: AccessTicket): Promise<void> {
    const ttlMs = ticket.expiresAt.getTime() - refreshMarginSeconds * 1000 - Date.now();
    if (ttlMs <= 0) return; // already inside the margin: nothing worth sharing
    const value = JSON.stringify({
      token: ticket.token,
      sign: ticket.sign,
      expiresAt: ticket.expiresAt.toISOString(),
      generatedAt: ticket.generatedAt.toISOString(),
    });
    await redis.set(cacheKey(cuit), value, 'PX', ttlMs);
  }

  return {
    async getTicket(cuit) {
      const cached = await readCache(cuit);
      if (cached) return cached;
      return withLock(`afip-wsaa:${cuit}:${service}`, async () => {
        // Whoever held the lock before us may have logged in already.
        const refreshed = await readCache(cuit);
        if (refreshed) return refreshed;
        const ticket = await login(cuit);
        await store(cuit, ticket);
        return ticket;
      });
    },
    async invalidate(cuit) {
      await redis.del(cacheKey(cuit));
    },
  };
}
