export { bearerToken, secretEquals } from './compare';
export { generateKeyringEntry, parseKeyring } from './keyring';
export type { Keyring } from './keyring';
export { needsRewrap, openSecret, rewrapSecret, sealSecret } from './seal';
export type { SealedSecret } from './seal';
export { SecretDecryptionError, SecretKeyUnavailableError } from './errors';
export { checkRecordSignature, signRecord } from './sign';
