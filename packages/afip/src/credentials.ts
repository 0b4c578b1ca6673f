import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '@jobfleet/contracts';
import type { WsaaCredentials } from './wsaa';

/**
 * Certificates per issuing CUIT from a directory (a mounted secret): `<cuit>.crt` and `<cuit>.key`,
 * PEM. Read on each login only (about twice a day per CUIT), so a rotated secret is picked up.
 */
export function credentialsFromDirectory(dir: string): (cuit: number) => Promise<WsaaCredentials> {
  return async (cuit) => {
    try {
      const [certificatePem, privateKeyPem] = await Promise.all([
        readFile(join(dir, `${cuit}.crt`), 'utf8'),
        readFile(join(dir, `${cuit}.key`), 'utf8'),
      ]);
      return { certificatePem, privateKeyPem };
    } catch (cause) {
      // No certificate for this CUIT is a setup problem: retrying will not help.
      throw new PermanentError('AFIP_NO_CREDENTIALS', `no AFIP certificate for CUIT ${cuit} in the credentials directory`, { cause });
    }
  };
}
