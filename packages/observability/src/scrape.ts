import { bearerToken, secretEquals } from '@jobfleet/secrets';

/** The challenge of a refused scrape (RFC 6750). */
export const METRICS_CHALLENGE = 'Bearer realm="metrics"';

/**
 * Whether a request may read /metrics: always without a configured token, else only with
 * `Authorization: Bearer <token>` (compared in equal time). One rule for the API and the worker.
 */
export function mayScrape(token: string | undefined, authorization: string | undefined): boolean {
  if (token === undefined) return true;
  const given = bearerToken(authorization);
  return given !== undefined && secretEquals(given, token);
}
