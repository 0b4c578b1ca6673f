import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { oauthError, type Reply } from './replies';

const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const REFRESH_TOKEN_GRANT = 'refresh_token';
/** The `aud` Google requires in a service account's assertion, whatever URL the exchange is posted to. */
const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token';
/** Google refuses assertions that live longer than an hour. */
const MAX_ASSERTION_LIFETIME_SECONDS = 3600;
const CLOCK_SKEW_SECONDS = 300;
const ACCESS_TOKEN_LIFETIME_SECONDS = 3600;

const headerSchema = z.object({ alg: z.literal('RS256') });
const claimsSchema = z.object({
  iss: z.string().min(1),
  scope: z.string().min(1),
  aud: z.string(),
  iat: z.number().int(),
  exp: z.number().int(),
});

type TokenExchange = { granted: true; accessToken: string; reply: Reply } | { granted: false; reply: Reply };

/**
 * Google's token endpoint: the JWT-bearer exchange of service accounts (the assertion's shape and
 * claims are checked, not its signature) and the OAuth refresh-token grant (client id, secret and
 * refresh token must be present). Either hands out an opaque access token.
 */
export function exchangeToken(form: URLSearchParams, tokenUrl: string): TokenExchange {
  const grantType = form.get('grant_type');
  if (grantType === REFRESH_TOKEN_GRANT) return exchangeRefreshToken(form);
  if (grantType !== JWT_BEARER_GRANT) {
    return refused(oauthError('unsupported_grant_type', `Invalid grant_type: ${grantType ?? ''}`));
  }
  const claims = readAssertion(form.get('assertion') ?? '');
  if (!claims) return refused(invalidGrant('Invalid JWT: the assertion is not a JWT with RS256 and iss, scope, aud, iat, exp.'));
  if (claims.aud !== GOOGLE_TOKEN_AUDIENCE && claims.aud !== tokenUrl) {
    return refused(invalidGrant('Invalid JWT: Failed audience check.'));
  }
  const now = Math.floor(Date.now() / 1000);
  const lifetime = claims.exp - claims.iat;
  if (claims.iat > now + CLOCK_SKEW_SECONDS || claims.exp <= now || lifetime <= 0 || lifetime > MAX_ASSERTION_LIFETIME_SECONDS) {
    return refused(
      invalidGrant(
        'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. ' +
          'Check your iat and exp values in the JWT claim.',
      ),
    );
  }
  return grant();
}

function exchangeRefreshToken(form: URLSearchParams): TokenExchange {
  for (const field of ['client_id', 'client_secret', 'refresh_token']) {
    if (!form.get(field)) return refused(oauthError('invalid_request', `Missing required parameter: ${field}`));
  }
  return grant();
}

function grant(): TokenExchange {
  const accessToken = `ya29.fake-${randomBytes(24).toString('base64url')}`;
  return {
    granted: true,
    accessToken,
    reply: {
      status: 200,
      body: { access_token: accessToken, expires_in: ACCESS_TOKEN_LIFETIME_SECONDS, token_type: 'Bearer' },
    },
  };
}

/** Decodes header and claims of a compact JWS; undefined unless both are what Google expects. */
function readAssertion(assertion: string): z.infer<typeof claimsSchema> | undefined {
  const [header, claims, signature, ...rest] = assertion.split('.');
  if (!header || !claims || !signature || rest.length > 0) return undefined;
  try {
    const decode = (part: string): unknown => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    if (!headerSchema.safeParse(decode(header)).success) return undefined;
    const parsed = claimsSchema.safeParse(decode(claims));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined; // not base64url JSON
  }
}

function invalidGrant(description: string): Reply {
  return oauthError('invalid_grant', description);
}

function refused(reply: Reply): TokenExchange {
  return { granted: false, reply };
}
