import { createCalendarClient, type CalendarClient, type CalendarCredential } from '@jobfleet/calendar';
import { createWsaaClient, createWsfeClient, type WsaaClient, type WsfeClient } from '@jobfleet/afip';
import type { Config } from '@jobfleet/config';

/**
 * The external services the processors call, from config: where Google Calendar and AFIP (WSAA +
 * WSFE) are. Who the calls act as is the tenant's own connection, resolved per job.
 */
export interface Connectors {
  /** A Calendar client acting as one tenant's credential. */
  calendar: (credential: CalendarCredential) => CalendarClient;
  afip: { wsaa: WsaaClient; wsfe: WsfeClient };
}

export function createConnectors(config: Pick<Config, 'calendar' | 'afip'>): Connectors {
  const { afip, calendar } = config;
  return {
    calendar: (credential) => createCalendarClient({ rootUrl: calendar.rootUrl, tokenUrl: calendar.tokenUrl, timeoutMs: calendar.timeoutMs, credential }),
    afip: {
      wsaa: createWsaaClient({ url: afip.wsaaUrl, timeoutMs: afip.timeoutMs }),
      wsfe: createWsfeClient({ url: afip.wsfeUrl, timeoutMs: afip.timeoutMs }),
    },
  };
}
