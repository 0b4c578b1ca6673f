import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WsaaCredentials } from './wsaa';

/** One issuer's files in a credentials directory. */
export interface IssuerFiles extends WsaaCredentials {
  cuit: number;
}

/**
 * Reads a directory of issuer certificates as single-tenant deployments keep them (a mounted
 * secret): `<cuit>.crt` and `<cuit>.key`, PEM. Used once, to import them into a tenant's
 * connections; a `.crt` without its `.key` is reported, not skipped.
 */
export async function readCredentialsDirectory(dir: string): Promise<IssuerFiles[]> {
  const names = await readdir(dir);
  const cuits = names.flatMap((name) => /^(\d{11})\.crt$/.exec(name)?.[1] ?? []);
  return Promise.all(
    cuits.map(async (cuit) => {
      const keyFile = `${cuit}.key`;
      if (!names.includes(keyFile)) throw new Error(`${join(dir, `${cuit}.crt`)} has no ${keyFile} beside it`);
      const [certificatePem, privateKeyPem] = await Promise.all([readFile(join(dir, `${cuit}.crt`), 'utf8'), readFile(join(dir, keyFile), 'utf8')]);
      return { cuit: Number(cuit), certificatePem, privateKeyPem };
    }),
  );
}
