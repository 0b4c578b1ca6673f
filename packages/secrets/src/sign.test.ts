import { generateKeyringEntry, parseKeyring } from './keyring';
import { checkRecordSignature, signRecord } from './sign';

describe('record signatures', () => {
  const k1 = generateKeyringEntry('k1');
  const k2 = generateKeyringEntry('k2');

  it('verify under the key they were made with, also after the active key changed', () => {
    const signed = signRecord(parseKeyring(k1), 'lock-audit checkpoint', '{"chain":"a","seq":3}');
    expect(signed.keyId).toBe('k1');
    expect(checkRecordSignature(parseKeyring(`${k1},${k2}`), 'lock-audit checkpoint', '{"chain":"a","seq":3}', signed)).toBe('valid');
  });

  it('refuse another text, another purpose, a forged signature, and say when the key is gone', () => {
    const keyring = parseKeyring(k1);
    const signed = signRecord(keyring, 'lock-audit checkpoint', '{"chain":"a","seq":3}');
    expect(checkRecordSignature(keyring, 'lock-audit checkpoint', '{"chain":"a","seq":4}', signed)).toBe('invalid');
    expect(checkRecordSignature(keyring, 'another purpose', '{"chain":"a","seq":3}', signed)).toBe('invalid');
    expect(checkRecordSignature(keyring, 'lock-audit checkpoint', '{"chain":"a","seq":3}', { ...signed, signature: 'ab'.repeat(32) })).toBe('invalid');
    expect(checkRecordSignature(keyring, 'lock-audit checkpoint', '{"chain":"a","seq":3}', { ...signed, signature: 'not hex' })).toBe('invalid');
    expect(checkRecordSignature(parseKeyring(k2), 'lock-audit checkpoint', '{"chain":"a","seq":3}', signed)).toBe('key-unavailable');
  });
});
