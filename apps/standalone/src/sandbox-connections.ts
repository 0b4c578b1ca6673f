import { createTestCertificate } from '@jobfleet/afip/simulator';
import { afipIssuerRepository, googleConnectionRepository, type Db } from '@jobfleet/db';
import type { Keyring } from '@jobfleet/secrets';

/** The CUIT of the README walk-through; the AFIP simulator accepts its throwaway certificate. */
export const SANDBOX_CUIT = 30712345671;

/**
 * Gives the dev tenant the connections the README walk-through uses: an AFIP issuer for
 * SANDBOX_CUIT (a self-signed certificate only the simulator accepts) and a Google connection to
 * the fake Calendar that may write to any calendar. Kept when present (the data directory
 * persists between starts), so it runs at every start.
 */
export async function seedSandboxConnections(db: Db, keyring: Keyring, options: { tenantId: string; afip: boolean; calendar: boolean }): Promise<void> {
  const { tenantId } = options;
  if (options.afip && !(await afipIssuerRepository.isOwnedBy(db, tenantId, SANDBOX_CUIT))) {
    await afipIssuerRepository.add(db, keyring, { tenantId, cuit: SANDBOX_CUIT, ...createTestCertificate({ cuit: SANDBOX_CUIT, commonName: 'jobfleet-sandbox' }) });
  }
  if (options.calendar && (await googleConnectionRepository.find(db, tenantId)) === undefined) {
    await googleConnectionRepository.add(db, keyring, {
      tenantId,
      credential: { kind: 'access-token', token: 'sandbox-token' },
      access: { policy: 'credential' },
    });
  }
}
