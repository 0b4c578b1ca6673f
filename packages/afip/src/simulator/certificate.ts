import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { nodeSignedRsaKey } from '../rsa';
import type { WsaaCredentials } from '../wsaa';

/**
 * A throwaway self-signed certificate shaped like the ones AFIP issues: the subject's
 * serialNumber is `CUIT <cuit>`, which is where the simulator (like WSAA) reads the CUIT.
 * For tests and the sandbox only: AFIP accepts no self-signed certificate.
 */
export function createTestCertificate(options: { cuit: number; commonName?: string }): WsaaCredentials {
  // Node's native key generation: forge's pure-JS one takes seconds.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const certificate = forge.pki.createCertificate();
  certificate.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  certificate.serialNumber = `01${forge.util.bytesToHex(forge.random.getBytesSync(8))}`;
  certificate.validity.notBefore = new Date(Date.now() - 60_000);
  certificate.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600_000);
  const subject = [
    { name: 'commonName', value: options.commonName ?? 'jobfleet-test' },
    { name: 'serialNumber', value: `CUIT ${options.cuit}` },
  ];
  certificate.setSubject(subject);
  certificate.setIssuer(subject);
  certificate.sign(nodeSignedRsaKey(privateKeyPem), forge.md.sha256.create());
  return { certificatePem: forge.pki.certificateToPem(certificate), privateKeyPem };
}
