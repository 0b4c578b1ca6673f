import { constants, createPrivateKey, privateEncrypt } from 'node:crypto';
import forge from 'node-forge';

const SHA256_OID = '2.16.840.1.101.3.4.2.1';

/**
 * A forge private key whose RSA signatures Node computes. On Node 24 forge's JavaScript RSA takes
 * ~1.6 s per 2048-bit signature (its BigInteger picks a slow path once a global `navigator`
 * exists); Node's takes about a millisecond. forge (CMS, certificates) only calls `sign(md)`, so
 * that is the one thing replaced: RSASSA-PKCS1-v1_5 is the PKCS#1 v1.5 private-key operation on
 * the DER DigestInfo of the digest (RFC 8017 §9.2). SHA-256 only.
 */
export function nodeSignedRsaKey(privateKeyPem: string): forge.pki.rsa.PrivateKey {
  const key = forge.pki.privateKeyFromPem(privateKeyPem);
  const nodeKey = createPrivateKey(privateKeyPem);
  const { asn1 } = forge;
  key.sign = (md) => {
    if (typeof md === 'string' || md.algorithm !== 'sha256') throw new Error('nodeSignedRsaKey signs SHA-256 message digests only');
    const digestInfo = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(SHA256_OID).getBytes()),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
      ]),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, md.digest().getBytes()),
    ]);
    const input = Buffer.from(asn1.toDer(digestInfo).getBytes(), 'binary');
    return privateEncrypt({ key: nodeKey, padding: constants.RSA_PKCS1_PADDING }, input).toString('binary');
  };
  return key;
}
