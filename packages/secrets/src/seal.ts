import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { SecretDecryptionError, SecretKeyUnavailableError } from './errors';
import { KEY_BYTES, keyEncryptionKey, type Keyring } from './keyring';

/**
 * A secret encrypted at rest: the data key (DEK) encrypts the plaintext, the key-encryption key
 * `kid` wraps the DEK, both with AES-256-GCM. Plain JSON (base64 strings), for a jsonb column.
 */
export interface SealedSecret {
  /** Format version; the version is also bound into both AADs. */
  v: 1;
  /** The key-encryption key the DEK is wrapped under. */
  kid: string;
  /** The DEK encrypted under `kid`. */
  wrappedKey: string;
  wrapIv: string;
  wrapTag: string;
  /** The plaintext's IV, tag and ciphertext under the DEK. */
  iv: string;
  tag: string;
  ciphertext: string;
}

const ALGORITHM = 'aes-256-gcm';
// 96-bit random IVs are GCM's recommended size; each encryption draws a fresh one.
const IV_BYTES = 12;
// Decipher with an explicit tag length, or GCM would accept a truncated tag.
const TAG_BYTES = 16;

const base64 = z.base64();
const sealedSecretSchema = z.strictObject({
  v: z.literal(1),
  kid: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/),
  wrappedKey: base64,
  wrapIv: base64,
  wrapTag: base64,
  iv: base64,
  tag: base64,
  ciphertext: base64,
}) satisfies z.ZodType<SealedSecret>;

/**
 * Encrypts `plaintext` under a fresh DEK and wraps the DEK under the active key. `context` names
 * where the secret belongs (e.g. `tenant:acme/connection:afip/20123456789`) and is authenticated,
 * so a ciphertext copied to another row or tenant does not open there.
 */
export function sealSecret(keyring: Keyring, plaintext: string, context: string): SealedSecret {
  assertContext(context);
  const dek = randomBytes(KEY_BYTES);
  try {
    const data = encrypt(dek, Buffer.from(plaintext, 'utf8'), dataAad(context));
    return { v: 1, ...wrap(keyring, dek, context), iv: data.iv, tag: data.tag, ciphertext: data.ciphertext };
  } finally {
    dek.fill(0);
  }
}

/**
 * The plaintext of `sealed` (read from storage, so checked for shape first).
 *
 * @throws SecretKeyUnavailableError when the keyring has no key `sealed.kid`.
 * @throws SecretDecryptionError when the shape is wrong or authentication fails (tampering,
 *   another context, a different key under the same id).
 */
export function openSecret(keyring: Keyring, sealed: unknown, context: string): string {
  assertContext(context);
  const secret = parseSealed(sealed);
  const dek = unwrap(keyring, secret, context);
  try {
    return decryptData(dek, secret, context).toString('utf8');
  } finally {
    dek.fill(0);
  }
}

/**
 * `sealed` with its DEK wrapped under the active key (a fresh wrap IV even when it already is).
 *
 * Only the DEK is re-wrapped; the data ciphertext is kept. Retiring a KEK only needs the DEKs
 * off it, and keeping the ciphertext means the plaintext is never decoded into a JS string, which
 * cannot be wiped from the heap. The data is still authenticated (into a buffer that is zeroed),
 * so a corrupt row fails here, during rotation, instead of later at use.
 *
 * @throws the same errors as `openSecret`.
 */
export function rewrapSecret(keyring: Keyring, sealed: unknown, context: string): SealedSecret {
  assertContext(context);
  const secret = parseSealed(sealed);
  const dek = unwrap(keyring, secret, context);
  try {
    decryptData(dek, secret, context).fill(0);
    return { ...secret, ...wrap(keyring, dek, context) };
  } finally {
    dek.fill(0);
  }
}

/**
 * Whether `sealed` is wrapped under a key other than the active one (so `rewrapSecret` should
 * run before that key is retired).
 *
 * @throws SecretDecryptionError when `sealed` is not a sealed secret.
 */
export function needsRewrap(keyring: Keyring, sealed: unknown): boolean {
  return parseSealed(sealed).kid !== keyring.activeKeyId;
}

function parseSealed(sealed: unknown): SealedSecret {
  const parsed = sealedSecretSchema.safeParse(sealed);
  if (!parsed.success) {
    // Paths only: the issues' messages are safe today, but nothing here needs them.
    const fields = [...new Set(parsed.error.issues.map((issue) => issue.path.join('.') || '(root)'))];
    throw new SecretDecryptionError('malformed', `not a sealed secret (v1): check ${fields.join(', ')}`, { details: { fields } });
  }
  const secret = parsed.data;
  const lengths: [Exclude<keyof SealedSecret, 'v' | 'kid'>, number][] = [
    ['wrappedKey', KEY_BYTES],
    ['wrapIv', IV_BYTES],
    ['wrapTag', TAG_BYTES],
    ['iv', IV_BYTES],
    ['tag', TAG_BYTES],
  ];
  const wrong = lengths.filter(([field, bytes]) => Buffer.from(secret[field], 'base64').length !== bytes).map(([field]) => field);
  if (wrong.length > 0) {
    throw new SecretDecryptionError('malformed', `not a sealed secret (v1): wrong length of ${wrong.join(', ')}`, { details: { fields: wrong } });
  }
  return secret;
}

function wrap(keyring: Keyring, dek: Buffer, context: string): Pick<SealedSecret, 'kid' | 'wrappedKey' | 'wrapIv' | 'wrapTag'> {
  const kid = keyring.activeKeyId;
  const kek = keyEncryptionKey(keyring, kid);
  // parseKeyring guarantees the active key; only a hand-made object gets here.
  if (kek === undefined) throw new SecretKeyUnavailableError(kid);
  const wrapped = encrypt(kek, dek, wrapAad(kid, context));
  return { kid, wrappedKey: wrapped.ciphertext, wrapIv: wrapped.iv, wrapTag: wrapped.tag };
}

function unwrap(keyring: Keyring, secret: SealedSecret, context: string): Buffer {
  const kek = keyEncryptionKey(keyring, secret.kid);
  if (kek === undefined) throw new SecretKeyUnavailableError(secret.kid);
  try {
    return decrypt(kek, secret.wrapIv, secret.wrapTag, secret.wrappedKey, wrapAad(secret.kid, context));
  } catch (cause) {
    throw new SecretDecryptionError('authentication', `the data key does not unwrap under key "${secret.kid}" in this context`, { cause });
  }
}

function decryptData(dek: Buffer, secret: SealedSecret, context: string): Buffer {
  try {
    return decrypt(dek, secret.iv, secret.tag, secret.ciphertext, dataAad(context));
  } catch (cause) {
    throw new SecretDecryptionError('authentication', 'the secret does not decrypt in this context', { cause });
  }
}

function encrypt(key: Buffer, plaintext: Buffer, aad: Buffer): { iv: string; tag: string; ciphertext: string } {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
}

function decrypt(key: Buffer, iv: string, tag: string, ciphertext: string, aad: Buffer): Buffer {
  const decipher = createDecipheriv(ALGORITHM, key, Buffer.from(iv, 'base64'), { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(Buffer.from(tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64')), decipher.final()]);
}

// Each AAD starts with its purpose and the format version, so a wrapped DEK never verifies as
// data (or the reverse) and a future v2 never accepts v1 bytes. A kid has no NUL, so the NUL
// after it ends it unambiguously whatever the context holds.
function dataAad(context: string): Buffer {
  return Buffer.from(`jobfleet-secrets/v1/data\0${context}`, 'utf8');
}

function wrapAad(kid: string, context: string): Buffer {
  return Buffer.from(`jobfleet-secrets/v1/wrap\0${kid}\0${context}`, 'utf8');
}

function assertContext(context: string): void {
  // An empty context would bind the secret to nowhere in particular, defeating the AAD.
  if (typeof context !== 'string' || context === '') throw new TypeError('a secret context must be a non-empty string');
}
