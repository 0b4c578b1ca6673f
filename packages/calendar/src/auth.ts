import { readFileSync } from 'node:fs';
import type { Auth, GoogleApis } from 'googleapis';
import { z } from 'zod';
import type { CalendarAuth } from '@jobfleet/config';
import { assertNever } from './exhaustive';

/** Enough to create, change and delete events; nothing else in the user's calendars. */
const CALENDAR_EVENTS_SCOPE = 'https://www.googleapis.com/auth/calendar.events';

/**
 * google-auth-library 11 posts every service-account token exchange to this constant
 * (build/src/gtoken/getToken.js) and offers no option to change it.
 */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

const serviceAccountKeySchema = z.object({
  client_email: z.string().min(1),
  private_key: z.string().min(1),
});

/**
 * Makes the auth client every Calendar request goes through, once googleapis is loaded. Its
 * transporter neither retries (BullMQ owns retries) nor waits longer than `timeoutMs`, token
 * exchanges included. A service-account key is read now, so a bad one fails the boot.
 */
export function prepareAuthClient(auth: CalendarAuth, timeoutMs: number): (google: GoogleApis) => Auth.OAuth2Client {
  const transporterOptions = { timeout: timeoutMs, retry: false };
  switch (auth.kind) {
    case 'access-token':
      return (google) => {
        const client = new google.auth.OAuth2({ transporterOptions });
        client.setCredentials({ access_token: auth.token });
        return client;
      };
    case 'service-account': {
      const key = readServiceAccountKey(auth.keyFile);
      return (google) => {
        const client = new google.auth.JWT({
          email: key.client_email,
          key: key.private_key,
          scopes: [CALENDAR_EVENTS_SCOPE],
          transporterOptions,
        });
        configureTokenExchange(client, auth.tokenUrl);
        return client;
      };
    }
    default:
      return assertNever(auth);
  }
}

/** Read once at start-up so a missing or malformed key fails the boot, not every job. */
function readServiceAccountKey(keyFile: string): z.infer<typeof serviceAccountKeySchema> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(keyFile, 'utf8'));
  } catch (cause) {
    throw new Error(`cannot read the Google service account key file ${keyFile}`, { cause });
  }
  const parsed = serviceAccountKeySchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`Google service account key file ${keyFile} is invalid: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * Sends the JWT-bearer exchange to `tokenUrl` and turns off the retries the library asks for on
 * it. The assertion's `aud` stays Google's endpoint, which is what Google (and proxies in front
 * of it) check.
 */
function configureTokenExchange(client: Auth.JWT, tokenUrl: string): void {
  client.transporter.interceptors.request.add({
    resolved: async (request) =>
      request.url.href === GOOGLE_TOKEN_URL
        ? { ...request, url: new URL(tokenUrl), retry: false, retryConfig: undefined }
        : request,
  });
}
