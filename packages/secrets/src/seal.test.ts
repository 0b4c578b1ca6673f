import { inspect } from 'node:util';
import { SecretDecryptionError, SecretKeyUnavailableError } from './errors';
import { generateKeyringEntry, parseKeyring } from './keyring';
import { needsRewrap, openSecret, rewrapSecret, sealSecret, type SealedSecret } from './seal';

const k1 = generateKeyringEntry('k1');
const k2 = generateKeyringEntry('k2');
const context = 'tenant:acme/connection:afip/20123456789';
const pem = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  'señal-ñandú-✓',
  '-----END PRIVATE KEY-----',
].join('\n');

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** `sealed` with one bit of `field` flipped. */
function flipped(sealed: SealedSecret, field: Exclude<keyof SealedSecret, 'v' | 'kid'>): SealedSecret {
  const bytes = Buffer.from(sealed[field], 'base64');
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  return { ...sealed, [field]: bytes.toString('base64') };
}

describe('sealSecret and openSecret', () => {
  const keyring = parseKeyring(k1);

  it('round-trips a secret through its JSON form', () => {
    const sealed = sealSecret(keyring, pem, context);
    const stored: unknown = JSON.parse(JSON.stringify(sealed));
    expect(openSecret(keyring, stored, context)).toBe(pem);
    expect(openSecret(keyring, sealSecret(keyring, '', context), context)).toBe('');
  });

  it('returns v1 with the active kid and base64 fields of the expected sizes', () => {
    const sealed = sealSecret(parseKeyring(`${k1},${k2}`), 'refresh-token', context);
    expect(Object.keys(sealed).sort()).toEqual(['ciphertext', 'iv', 'kid', 'tag', 'v', 'wrapIv', 'wrapTag', 'wrappedKey']);
    expect(sealed).toMatchObject({ v: 1, kid: 'k2' });
    const size = (field: string): number => Buffer.from(field, 'base64').length;
    expect([sealed.wrappedKey, sealed.wrapIv, sealed.wrapTag, sealed.iv, sealed.tag].map(size)).toEqual([32, 12, 16, 12, 16]);
    expect(size(sealed.ciphertext)).toBe(Buffer.byteLength('refresh-token'));
  });

  it('stores no trace of the plaintext and differs on every seal of the same plaintext', () => {
    const plaintext = 'ya29.refresh-token-of-acme-0123456789';
    const first = sealSecret(keyring, plaintext, context);
    const second = sealSecret(keyring, plaintext, context);
    const stored = JSON.stringify(first);
    const forms = [plaintext, 'refresh-token', Buffer.from(plaintext).toString('base64').slice(0, 16), Buffer.from(plaintext).toString('hex').slice(0, 16)];
    for (const form of forms) expect(stored).not.toContain(form);
    expect(second.ciphertext).not.toBe(first.ciphertext);
    expect(second.wrappedKey).not.toBe(first.wrappedKey);
    expect(second.iv).not.toBe(first.iv);
  });

  it('refuses to open under another context (the row or tenant it was copied to)', () => {
    const sealed = sealSecret(keyring, pem, context);
    for (const other of ['tenant:other/connection:afip/20123456789', `${context} `, 'tenant:acme']) {
      const error = thrown(() => openSecret(keyring, sealed, other));
      expect(error).toBeInstanceOf(SecretDecryptionError);
      expect(error).toMatchObject({ code: 'SECRET_DECRYPTION_FAILED', reason: 'authentication', retryable: false });
    }
  });

  it.each(['tag', 'ciphertext', 'iv', 'wrappedKey', 'wrapTag', 'wrapIv'] as const)('refuses a secret whose %s was tampered with', (field) => {
    const sealed = sealSecret(keyring, pem, context);
    const error = thrown(() => openSecret(keyring, flipped(sealed, field), context));
    expect(error).toBeInstanceOf(SecretDecryptionError);
    expect(error).toMatchObject({ reason: 'authentication' });
  });

  it('refuses a secret whose kid was relabelled, and a different key under the same kid', () => {
    const both = parseKeyring(`${k1},${k2}`);
    const sealed = sealSecret(both, pem, context);
    expect(thrown(() => openSecret(both, { ...sealed, kid: 'k1' }, context))).toMatchObject({ reason: 'authentication' });
    const impostor = parseKeyring(generateKeyringEntry('k2'));
    expect(thrown(() => openSecret(impostor, sealed, context))).toMatchObject({ code: 'SECRET_DECRYPTION_FAILED', reason: 'authentication' });
  });

  it('refuses a secret whose data was moved under another data key', () => {
    const a = sealSecret(keyring, pem, context);
    const b = sealSecret(keyring, 'other', context);
    expect(thrown(() => openSecret(keyring, { ...a, iv: b.iv, tag: b.tag, ciphertext: b.ciphertext }, context))).toBeInstanceOf(
      SecretDecryptionError,
    );
  });

  it('throws SecretKeyUnavailableError naming the kid the keyring lacks', () => {
    const sealed = sealSecret(parseKeyring(k2), pem, context);
    const error = thrown(() => openSecret(keyring, sealed, context));
    expect(error).toBeInstanceOf(SecretKeyUnavailableError);
    expect(error).toMatchObject({ code: 'SECRET_KEY_UNAVAILABLE', kid: 'k2', retryable: true });
    expect((error as Error).message).toBe('no key "k2" in the keyring to open this secret');
  });

  const sealed = sealSecret(keyring, pem, context);
  const short = Buffer.from(sealed.tag, 'base64').subarray(0, 12).toString('base64');
  it.each<[string, unknown]>([
    ['null', null],
    ['a string', JSON.stringify(sealed)],
    ['another version', { ...sealed, v: 2 }],
    ['a missing field', { ...sealed, wrapTag: undefined }],
    ['an extra field', { ...sealed, plaintext: 'x' }],
    ['a field that is not base64', { ...sealed, ciphertext: '***' }],
    ['an invalid kid', { ...sealed, kid: 'k 1' }],
    ['a truncated tag', { ...sealed, tag: short }],
  ])('refuses %s as malformed', (_name, value) => {
    const error = thrown(() => openSecret(keyring, value, context));
    expect(error).toBeInstanceOf(SecretDecryptionError);
    expect(error).toMatchObject({ reason: 'malformed' });
  });

  it('never puts the plaintext or key bytes in its errors', () => {
    const sealedPem = sealSecret(keyring, pem, context);
    const errors = [
      thrown(() => openSecret(keyring, sealedPem, 'elsewhere')),
      thrown(() => openSecret(keyring, flipped(sealedPem, 'tag'), context)),
      thrown(() => openSecret(parseKeyring(k2), sealedPem, context)),
      thrown(() => openSecret(keyring, { ...sealedPem, v: 2 }, context)),
    ];
    const keyBase64 = k1.slice(3);
    for (const error of errors) {
      const shown = `${inspect(error, { depth: 10 })} ${JSON.stringify(error)}`;
      for (const secret of ['MIIEvQIBADAN', 'ñandú', keyBase64.slice(0, 12), Buffer.from(keyBase64, 'base64').toString('hex').slice(0, 12)]) {
        expect(shown).not.toContain(secret);
      }
    }
  });

  it('refuses an empty context', () => {
    expect(() => sealSecret(keyring, pem, '')).toThrow(TypeError);
    expect(() => openSecret(keyring, sealed, '')).toThrow(TypeError);
  });
});

describe('rotation', () => {
  it('rewraps a k1 secret under k2, which then opens with k2 alone and not with k1 alone', () => {
    const sealed = sealSecret(parseKeyring(k1), pem, context);
    const both = parseKeyring(`${k1},${k2}`);
    expect(both.activeKeyId).toBe('k2');
    expect(needsRewrap(both, sealed)).toBe(true);

    const rewrapped = rewrapSecret(both, sealed, context);
    expect(rewrapped.kid).toBe('k2');
    expect(needsRewrap(both, rewrapped)).toBe(false);
    expect(openSecret(both, rewrapped, context)).toBe(pem);
    expect(openSecret(parseKeyring(k2), rewrapped, context)).toBe(pem);

    const onlyK1 = parseKeyring(k1);
    expect(thrown(() => openSecret(onlyK1, rewrapped, context))).toBeInstanceOf(SecretKeyUnavailableError);
    // Even relabelled as k1, nothing of the rewrapped secret opens under k1.
    expect(thrown(() => openSecret(onlyK1, { ...rewrapped, kid: 'k1' }, context))).toBeInstanceOf(SecretDecryptionError);
    expect(thrown(() => openSecret(onlyK1, { ...rewrapped, kid: 'k1', wrappedKey: sealed.wrappedKey }, context))).toBeInstanceOf(
      SecretDecryptionError,
    );
  });

  it('re-wraps only the data key: the ciphertext is kept and the wrap is fresh', () => {
    const both = parseKeyring(`${k1},${k2}`);
    const sealed = sealSecret(parseKeyring(k1), pem, context);
    const rewrapped = rewrapSecret(both, sealed, context);
    expect(rewrapped).toMatchObject({ v: 1, iv: sealed.iv, tag: sealed.tag, ciphertext: sealed.ciphertext });
    expect(rewrapped.wrappedKey).not.toBe(sealed.wrappedKey);
    const again = rewrapSecret(both, rewrapped, context);
    expect(again.kid).toBe('k2');
    expect(again.wrapIv).not.toBe(rewrapped.wrapIv);
    expect(openSecret(both, again, context)).toBe(pem);
  });

  it('refuses to rewrap a tampered secret, one from another context or one whose key is gone', () => {
    const both = parseKeyring(`${k1},${k2}`);
    const sealed = sealSecret(parseKeyring(k1), pem, context);
    expect(thrown(() => rewrapSecret(both, flipped(sealed, 'ciphertext'), context))).toMatchObject({ reason: 'authentication' });
    expect(thrown(() => rewrapSecret(both, sealed, 'tenant:other'))).toBeInstanceOf(SecretDecryptionError);
    expect(thrown(() => rewrapSecret(parseKeyring(k2), sealed, context))).toBeInstanceOf(SecretKeyUnavailableError);
  });

  it('needsRewrap follows the active key and refuses what is not a sealed secret', () => {
    const sealed = sealSecret(parseKeyring(`${k1},${k2}`), pem, context);
    expect(needsRewrap(parseKeyring(`${k1},${k2}`), sealed)).toBe(false);
    expect(needsRewrap(parseKeyring(`${k1},${k2}`, 'k1'), sealed)).toBe(true);
    expect(thrown(() => needsRewrap(parseKeyring(k1), { v: 1 }))).toMatchObject({ reason: 'malformed' });
  });
});
