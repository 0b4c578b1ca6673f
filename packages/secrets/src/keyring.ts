import { randomBytes } from 'node:crypto';
import { KeyringError } from './errors';

const KID = /^[A-Za-z0-9_-]{1,32}$/;
/** AES-256 takes a 32-byte key. */
export const KEY_BYTES = 32;

/**
 * Key-encryption keys by id, one of them active (the one new secrets are wrapped under). Built by
 * `parseKeyring` only. The key bytes live in a module-private map, not on the object, so logging,
 * inspecting or serialising a keyring shows its key ids and nothing else.
 */
export class Keyring {
  /** Every key id, in spec order. */
  readonly keyIds: readonly string[];

  /** @internal use `parseKeyring` */
  constructor(
    keys: ReadonlyMap<string, Buffer>,
    /** The id new secrets are wrapped under. */
    readonly activeKeyId: string,
  ) {
    this.keyIds = Object.freeze([...keys.keys()]);
    kekStore.set(this, keys);
    Object.freeze(this);
  }

  has(kid: string): boolean {
    return this.keyIds.includes(kid);
  }
}

const kekStore = new WeakMap<Keyring, ReadonlyMap<string, Buffer>>();

/** The key-encryption key `kid` of `keyring`; undefined when it holds none. */
export function keyEncryptionKey(keyring: Keyring, kid: string): Buffer | undefined {
  return kekStore.get(keyring)?.get(kid);
}

/**
 * Parses `kid1:base64key,kid2:base64key` (whitespace around entries is ignored). Each kid matches
 * `[A-Za-z0-9_-]{1,32}`, each key is canonical base64 of exactly 32 bytes, kids are unique.
 * `activeKeyId` defaults to the last entry, so rotating is appending a key.
 *
 * @throws KeyringError naming the problem and the entry's position; never the key material.
 */
export function parseKeyring(spec: string, activeKeyId?: string): Keyring {
  const entries = spec.trim() === '' ? [] : spec.split(',');
  if (entries.length === 0) throw new KeyringError('empty', 'the keyring has no entries (expected kid:base64key[,kid:base64key...])');
  const keys = new Map<string, Buffer>();
  entries.forEach((raw, index) => {
    const position = `keyring entry ${index + 1} of ${entries.length}`;
    const entry = raw.trim();
    const colon = entry.indexOf(':');
    // The entry is not echoed: with the colon missing or misplaced, any of it may be key material.
    if (colon < 0) throw new KeyringError('malformed-entry', `${position} is not kid:base64key`);
    const kid = entry.slice(0, colon);
    const encoded = entry.slice(colon + 1);
    if (!KID.test(kid)) throw new KeyringError('invalid-kid', `${position} has a key id that does not match [A-Za-z0-9_-]{1,32}`);
    if (keys.has(kid)) throw new KeyringError('duplicate-kid', `${position}: key id "${kid}" appears more than once`);
    keys.set(kid, decodeKey(encoded, `${position} (key id "${kid}")`));
  });
  const active = activeKeyId ?? [...keys.keys()].at(-1);
  if (active === undefined || !keys.has(active)) {
    // An active id that is not even a well-formed kid may be a key pasted into the wrong variable.
    const named = active !== undefined && KID.test(active) ? `"${active}"` : '(not a valid key id)';
    throw new KeyringError('unknown-active-kid', `the active key id ${named} is not in the keyring (key ids: ${[...keys.keys()].join(', ')})`);
  }
  return new Keyring(keys, active);
}

/** `kid:base64key` of 32 fresh random bytes, to append to the keyring spec. */
export function generateKeyringEntry(kid: string): string {
  if (!KID.test(kid)) throw new KeyringError('invalid-kid', 'the key id does not match [A-Za-z0-9_-]{1,32}');
  return `${kid}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

function decodeKey(encoded: string, where: string): Buffer {
  // Buffer.from skips characters it does not know; a round trip admits canonical base64 only.
  const key = Buffer.from(encoded, 'base64');
  if (encoded === '' || key.toString('base64') !== encoded) {
    key.fill(0);
    throw new KeyringError('invalid-base64', `${where}: the key is not valid base64`);
  }
  if (key.length !== KEY_BYTES) {
    const length = key.length;
    key.fill(0);
    throw new KeyringError('wrong-key-length', `${where}: the key decodes to ${length} bytes, expected ${KEY_BYTES}`);
  }
  return key;
}
