import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { KeyringError, type KeyringProblem } from './errors';
import { generateKeyringEntry, parseKeyring } from './keyring';

// Every key this file makes, so error messages can be checked against all of them.
const material: string[] = [];
function key(bytes = 32, encoding: BufferEncoding = 'base64'): string {
  const encoded = randomBytes(bytes).toString(encoding);
  material.push(encoded);
  return encoded;
}

function keyringError(spec: string, activeKeyId?: string): KeyringError {
  try {
    parseKeyring(spec, activeKeyId);
  } catch (error) {
    if (error instanceof KeyringError) return error;
    throw error;
  }
  throw new Error('parseKeyring accepted the spec');
}

describe('parseKeyring', () => {
  it('makes the last entry active unless another id is named', () => {
    const spec = `k1:${key()},k2:${key()}`;
    expect(parseKeyring(spec)).toMatchObject({ keyIds: ['k1', 'k2'], activeKeyId: 'k2' });
    expect(parseKeyring(spec, 'k1').activeKeyId).toBe('k1');
  });

  it('accepts whitespace around entries and kids of letters, digits, _ and -', () => {
    const kid = `A_b-9${'x'.repeat(27)}`;
    expect(parseKeyring(` 2024-01:${key()} ,\n ${kid}:${key()} `).keyIds).toEqual(['2024-01', kid]);
  });

  it('shows key ids and never key bytes when a keyring is serialised or inspected', () => {
    const material = key();
    const keyring = parseKeyring(`k1:${material}`);
    const hex = Buffer.from(material, 'base64').toString('hex');
    for (const shown of [JSON.stringify(keyring), inspect(keyring, { showHidden: true, depth: 10 })]) {
      expect(shown).toContain('k1');
      expect(shown).not.toContain(material);
      expect(shown).not.toContain(hex);
    }
  });

  const good = key();
  // Four entries each: jest reads a callback with more parameters than the row has as taking `done`.
  const cases: [string, KeyringProblem, string, string | undefined][] = [
    ['an empty spec', 'empty', '  ', undefined],
    ['an entry without a colon', 'malformed-entry', `k1:${key()},${good}`, undefined],
    ['an empty entry', 'malformed-entry', `k1:${good},`, undefined],
    ['a kid with a dot', 'invalid-kid', `k.1:${good}`, undefined],
    ['a kid of 33 characters', 'invalid-kid', `${'k'.repeat(33)}:${good}`, undefined],
    ['an empty kid', 'invalid-kid', `:${good}`, undefined],
    ['key and kid swapped', 'invalid-kid', `${good}:k1`, undefined],
    ['a key with characters outside base64', 'invalid-base64', `k1:${good.slice(0, -4)}!!!=`, undefined],
    ['a key in base64url', 'invalid-base64', `k1:${key(32, 'base64url')}`, undefined],
    ['a key with its padding removed', 'invalid-base64', `k1:${good.replace(/=+$/, '')}`, undefined],
    ['an empty key', 'invalid-base64', 'k1:', undefined],
    ['a 16-byte key', 'wrong-key-length', `k1:${key(16)}`, undefined],
    ['a 33-byte key', 'wrong-key-length', `k1:${key(33)}`, undefined],
    ['a duplicate kid', 'duplicate-kid', `k1:${good},k2:${key()},k1:${key()}`, undefined],
    ['an active id not in the keyring', 'unknown-active-kid', `k1:${good}`, 'k9'],
    ['a key passed as the active id', 'unknown-active-kid', `k1:${key()}`, good],
  ];

  it.each(cases)('refuses %s with problem %s, naming no key material', (_name, problem, spec, activeKeyId) => {
    const error = keyringError(spec, activeKeyId);
    expect(error).toMatchObject({ code: 'KEYRING_INVALID', problem, retryable: false });
    const shown = `${error.message} ${JSON.stringify(error)} ${JSON.stringify(error.details)} ${inspect(error)}`;
    // A 12-character prefix also catches the truncated and re-padded forms of a key.
    for (const secret of material) expect(shown).not.toContain(secret.slice(0, 12));
  });

  it('names the entry and kid in its messages', () => {
    expect(keyringError(`k1:${key()},k2:${key(16)}`).message).toBe(
      'keyring entry 2 of 2 (key id "k2"): the key decodes to 16 bytes, expected 32',
    );
    expect(keyringError(`k1:${key()},k1:${key()}`).message).toBe('keyring entry 2 of 2: key id "k1" appears more than once');
    expect(keyringError(`k1:${key()}`, 'k2').message).toBe('the active key id "k2" is not in the keyring (key ids: k1)');
  });
});

describe('generateKeyringEntry', () => {
  it('returns kid:base64 of 32 fresh random bytes that parseKeyring accepts', () => {
    const first = generateKeyringEntry('2025-06');
    const second = generateKeyringEntry('2025-06');
    expect(first).toMatch(/^2025-06:[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(first.slice('2025-06:'.length), 'base64')).toHaveLength(32);
    expect(second).not.toBe(first);
    expect(parseKeyring(`${first},${generateKeyringEntry('next')}`).keyIds).toEqual(['2025-06', 'next']);
  });

  it('refuses an invalid kid', () => {
    expect(() => generateKeyringEntry('has space')).toThrow(KeyringError);
    expect(() => generateKeyringEntry('')).toThrow(KeyringError);
  });
});
