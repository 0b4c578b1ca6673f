import { createCalendarClient } from '@jobfleet/calendar';
import { createWsaaClient, createWsfeClient, credentialsFromDirectory, type WsaaCredentials } from '@jobfleet/afip';
import type { Config } from '@jobfleet/config';
import type { WorkerFleetDeps } from './worker';

type Credentials = WorkerFleetDeps['afip']['credentials'];

/**
 * The external clients the processors call, from config: Google Calendar and AFIP (WSAA + WSFE).
 * `credentials` overrides the certificate source (sandbox certificates in `npm start`).
 */
export function createConnectors(
  config: Pick<Config, 'calendar' | 'afip'>,
  credentials?: Credentials,
): Pick<WorkerFleetDeps, 'calendar' | 'afip'> {
  const { afip } = config;
  const source = credentials ?? (afip.credentialsDir === undefined ? missingCredentials : credentialsFromDirectory(afip.credentialsDir));
  return {
    calendar: createCalendarClient(config.calendar),
    afip: {
      wsaa: createWsaaClient({ url: afip.wsaaUrl, timeoutMs: afip.timeoutMs }),
      wsfe: createWsfeClient({ url: afip.wsfeUrl, timeoutMs: afip.timeoutMs }),
      credentials: source,
    },
  };
}

// Config refuses live afip-sync without AFIP_CREDENTIALS_DIR; this only fires on a misassembled process.
function missingCredentials(cuit: number): WsaaCredentials {
  throw new Error(`no AFIP credentials configured (AFIP_CREDENTIALS_DIR) for CUIT ${cuit}`);
}
