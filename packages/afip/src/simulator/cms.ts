import forge from 'node-forge';
import { CMS_OIDS } from '../wsaa';

/** Why a CMS was refused, as a WSAA fault code (`ns1:` prefix added when answering). */
export type CmsRejection = { faultCode: 'cms.bad' | 'cms.sign.invalid'; message: string };

/**
 * Reads `in0` as WSAA does: base64 DER of a CMS SignedData with the TRA attached, checks the
 * signer's signature over the signed attributes and that their messageDigest is the TRA's
 * SHA-256. Any certificate is accepted (there is no AFIP CA here).
 */
export function readSignedTra(in0: string): { tra: string; certificate: forge.pki.Certificate } | CmsRejection {
  let signedData: forge.asn1.Asn1;
  let tra: string;
  let certificate: forge.pki.Certificate | undefined;
  try {
    const contentInfo = forge.asn1.fromDer(forge.util.decode64(in0.replace(/\s+/g, '')));
    const message = forge.pkcs7.messageFromAsn1(contentInfo);
    if (!('certificates' in message)) throw new Error('not a SignedData');
    certificate = message.certificates[0];
    signedData = child(child(contentInfo, 1), 0); // ContentInfo [0] EXPLICIT SignedData
    // forge leaves `content` empty for SignedData: read encapContentInfo's [0] EXPLICIT OCTET STRING.
    const content = child(child(child(signedData, 2), 1), 0);
    const parts = Array.isArray(content.value) ? content.value : [content];
    tra = forge.util.decodeUtf8(parts.map((part) => (typeof part.value === 'string' ? part.value : '')).join(''));
  } catch {
    return { faultCode: 'cms.bad', message: 'El CMS no es valido' };
  }
  if (!certificate) return { faultCode: 'cms.bad', message: 'El CMS no contiene el certificado del firmante' };
  return verifySigner(signedData, tra, certificate) ? { tra, certificate } : { faultCode: 'cms.sign.invalid', message: 'Firma invalida o algoritmo no soportado' };
}

function verifySigner(signedData: forge.asn1.Asn1, tra: string, certificate: forge.pki.Certificate): boolean {
  try {
    // SignedData ends with its SET of SignerInfo; we sign with exactly one.
    const signerInfos = asList(signedData).at(-1);
    const signerInfo = signerInfos ? asList(signerInfos)[0] : undefined;
    if (!signerInfo) return false;
    const fields = asList(signerInfo);
    // Signed attributes are [0] IMPLICIT: a context-specific tag number, not a universal asn1.Type.
    const attributes = fields.find((f) => f.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && (f.type as number) === 0);
    const signature = fields.find((f) => f.tagClass === forge.asn1.Class.UNIVERSAL && f.type === forge.asn1.Type.OCTETSTRING);
    if (!attributes || !signature || typeof signature.value !== 'string') return false;
    // The signature covers the attributes re-encoded as a SET (RFC 5652 §5.4).
    const signedSet = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.SET, true, asList(attributes));
    const digest = forge.md.sha256.create().update(forge.asn1.toDer(signedSet).getBytes());
    const publicKey = certificate.publicKey as forge.pki.rsa.PublicKey;
    if (!publicKey.verify(digest.digest().getBytes(), signature.value)) return false;
    return messageDigestOf(attributes) === forge.md.sha256.create().update(tra, 'utf8').digest().getBytes();
  } catch {
    return false;
  }
}

function messageDigestOf(attributes: forge.asn1.Asn1): string | undefined {
  for (const attribute of asList(attributes)) {
    const [type, values] = asList(attribute);
    if (type && typeof type.value === 'string' && forge.asn1.derToOid(type.value) === CMS_OIDS.messageDigest) {
      const value = values ? asList(values)[0]?.value : undefined;
      return typeof value === 'string' ? value : undefined;
    }
  }
  return undefined;
}

function asList(node: forge.asn1.Asn1): forge.asn1.Asn1[] {
  return Array.isArray(node.value) ? node.value : [];
}

function child(node: forge.asn1.Asn1, index: number): forge.asn1.Asn1 {
  const found = asList(node)[index];
  if (!found) throw new Error('malformed ASN.1');
  return found;
}
