import type { Auth, GoogleApis } from 'googleapis';
import { assertNever } from './exhaustive';

/** A tenant's Google credential, as its connection holds it. */
export type CalendarCredential =
  | { kind: 'service-account'; clientEmail: string; privateKey: string }
  | { kind: 'oauth-refresh-token'; clientId: string; clientSecret: string; refreshToken: string }
  // A static bearer token (sandbox, tests): Google's expire within the hour.
  | { kind: 'access-token'; token: string };

/** Enough to create, change and delete events; nothing else in the user's calendars. */
const CALENDAR_EVENTS_SCOPE = 'https://www.googleapis.com/auth/calendar.events';

/**
 * google-auth-library 11 posts every service-account token exchange to this constant
 * (build/src/gtoken/getToken.js) and offers no option to change it.
 */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

/**
 * Makes the auth client every Calendar request of one tenant goes through. Its transporter
 * neither retries (BullMQ owns retries) nor waits longer than `timeoutMs`, token exchanges included.
 */
export function createAuthClient(google: GoogleApis, credential: CalendarCredential, tokenUrl: string, timeoutMs: number): Auth.OAuth2Client {
  const transporterOptions = { timeout: timeoutMs, retry: false };
  switch (credential.kind) {
    case 'access-token': {
      const client = new google.auth.OAuth2({ transporterOptions });
      client.setCredentials({ access_token: credential.token });
      return client;
    }
    case 'oauth-refresh-token': {
      const client = new google.auth.OAuth2({ clientId: credential.clientId, clientSecret: credential.clientSecret, transporterOptions });
      client.setCredentials({ refresh_token: credential.refreshToken });
      configureTokenExchange(client, tokenUrl);
      return client;
    }
    case 'service-account': {
      const client = new google.auth.JWT({
        email: credential.clientEmail,
        key: credential.privateKey,
        scopes: [CALENDAR_EVENTS_SCOPE],
        transporterOptions,
      });
      configureTokenExchange(client, tokenUrl);
      return client;
    }
    default:
      return assertNever(credential);
  }
}

/**
 * Sends token exchanges (JWT bearer, refresh token) to `tokenUrl` and turns off the retries the
 * library asks for on them. The assertion's `aud` stays Google's endpoint, which is what Google (and proxies in front
 * of it) check.
 */
function configureTokenExchange(client: Auth.OAuth2Client, tokenUrl: string): void {
  client.transporter.interceptors.request.add({
    resolved: async (request) =>
      request.url.href === GOOGLE_TOKEN_URL
        ? { ...request, url: new URL(tokenUrl), retry: false, retryConfig: undefined }
        : request,
  });
}
