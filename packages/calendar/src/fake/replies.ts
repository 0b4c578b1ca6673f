/** One HTTP answer of the fake, before it is written to the socket. */
export interface Reply {
  status: number;
  /** Sent as JSON; none for 204. */
  body?: unknown;
  headers?: Record<string, string>;
}

interface GoogleErrorOptions {
  /** `global` for most errors, `usageLimits` for quota and rate limits, `calendar` for Calendar-specific ones. */
  domain?: string;
  location?: string;
  locationType?: 'header' | 'parameter';
  headers?: Record<string, string>;
}

/** Google's JSON error body: `{"error":{"errors":[{domain, reason, message}], code, message}}`. */
export function googleError(status: number, reason: string, message: string, options: GoogleErrorOptions = {}): Reply {
  const { domain = 'global', location, locationType, headers } = options;
  const detail = { domain, reason, message, ...(location ? { locationType, location } : {}) };
  return { status, body: { error: { errors: [detail], code: status, message } }, headers };
}

/** Google's OAuth token endpoint errors are flat: `{"error":"invalid_grant","error_description":"..."}`. */
export function oauthError(error: string, description: string): Reply {
  return { status: 400, body: { error, error_description: description } };
}
