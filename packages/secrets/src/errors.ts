import { JobfleetError } from '@jobfleet/contracts';

/**
 * What is wrong with a keyring spec:
 * - `empty`: no entries at all;
 * - `malformed-entry`: an entry is not `kid:base64key`;
 * - `invalid-kid`: a key id is not `[A-Za-z0-9_-]{1,32}`;
 * - `invalid-base64`: a key is not canonical base64;
 * - `wrong-key-length`: a key does not decode to exactly 32 bytes;
 * - `duplicate-kid`: two entries share a key id;
 * - `unknown-active-kid`: the active key id names no entry.
 */
export type KeyringProblem =
  | 'empty'
  | 'malformed-entry'
  | 'invalid-kid'
  | 'invalid-base64'
  | 'wrong-key-length'
  | 'duplicate-kid'
  | 'unknown-active-kid';

/** The keyring spec cannot be used. The message names the entry by position (and kid, when valid), never its key. */
export class KeyringError extends JobfleetError {
  readonly code = 'KEYRING_INVALID';
  readonly retryable = false;
  constructor(
    readonly problem: KeyringProblem,
    message: string,
  ) {
    super(message, { details: { problem } });
  }
}

/**
 * The secret was sealed under a key id this keyring does not hold. Retryable: during a rollout a
 * worker still on the old keyring can meet a secret sealed by a process on the new one (add a key
 * everywhere before making it active, and retire a key only after `needsRewrap` finds no row).
 */
export class SecretKeyUnavailableError extends JobfleetError {
  readonly code = 'SECRET_KEY_UNAVAILABLE';
  readonly retryable = true;
  constructor(readonly kid: string) {
    super(`no key "${kid}" in the keyring to open this secret`, { details: { kid } });
  }
}

/**
 * - `malformed`: not a sealed secret of a known version and shape;
 * - `authentication`: the key id is known but authentication failed (tampered data, another row's
 *   or tenant's context, or a different key under the same id).
 */
export type SecretDecryptionReason = 'malformed' | 'authentication';

/** The sealed secret does not open; never retryable, as the same bytes give the same answer. */
export class SecretDecryptionError extends JobfleetError {
  readonly code = 'SECRET_DECRYPTION_FAILED';
  readonly retryable = false;
  constructor(
    readonly reason: SecretDecryptionReason,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, { ...options, details: { reason, ...options.details } });
  }
}
