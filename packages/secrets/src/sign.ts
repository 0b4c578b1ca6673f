import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { keyEncryptionKey, type Keyring } from './keyring';

/** A record's signature and the keyring key it was made under. */
export interface RecordSignature {
  keyId: string;
  /** HMAC-SHA256, hex. */
  signature: string;
}

export type SignatureCheck = 'valid' | 'invalid' | 'key-unavailable';

/**
 * A key of its own per purpose, derived (HKDF-SHA256) from a key-encryption key, so a signing key
 * never doubles as an encryption key and a signature made for one purpose proves nothing in another.
 */
function signingKey(keyring: Keyring, keyId: string, purpose: string): Buffer | undefined {
  const kek = keyEncryptionKey(keyring, keyId);
  return kek === undefined ? undefined : Buffer.from(hkdfSync('sha256', kek, Buffer.alloc(0), `jobfleet signature: ${purpose}`, 32));
}

/**
 * Signs `text` (a canonical rendering of the record: the caller must render the same bytes to
 * check) under the keyring's active key. Anyone holding the keyring can sign: this proves a record
 * came from the fleet, not from someone with only database access.
 */
export function signRecord(keyring: Keyring, purpose: string, text: string): RecordSignature {
  const key = signingKey(keyring, keyring.activeKeyId, purpose);
  // The active key is in the keyring by construction (parseKeyring checks it).
  if (key === undefined) throw new Error(`the active key ${keyring.activeKeyId} is missing from its keyring`);
  return { keyId: keyring.activeKeyId, signature: createHmac('sha256', key).update(text, 'utf8').digest('hex') };
}

/** Whether `signature` is `text`'s under `keyId`; key-unavailable once that key left the keyring. */
export function checkRecordSignature(keyring: Keyring, purpose: string, text: string, signed: RecordSignature): SignatureCheck {
  const key = signingKey(keyring, signed.keyId, purpose);
  if (key === undefined) return 'key-unavailable';
  const expected = createHmac('sha256', key).update(text, 'utf8').digest();
  const given = Buffer.from(signed.signature, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? 'valid' : 'invalid';
}
