import { randomUUID } from 'node:crypto';
import { NOOP_PROVIDER, OpenFeature, type Client, type Hook } from '@openfeature/server-sdk';
import type { FleetControls } from './live';
import { FleetFlagProvider } from './provider';

export interface FlagClient {
  /** The OpenFeature client every evaluation goes through. */
  readonly client: Client;
  close(): Promise<void>;
}

/**
 * An OpenFeature client backed by our flags. OpenFeature's API is one per process: each client
 * gets a domain of its own, so several fleets (tests, the standalone start) keep their providers apart.
 */
export async function openFlagClient(controls: FleetControls, hooks: Hook[] = []): Promise<FlagClient> {
  const domain = `jobfleet-${randomUUID()}`;
  await OpenFeature.setProviderAndWait(domain, new FleetFlagProvider(controls, hooks));
  return {
    client: OpenFeature.getClient(domain),
    close: () => OpenFeature.setProviderAndWait(domain, NOOP_PROVIDER),
  };
}
