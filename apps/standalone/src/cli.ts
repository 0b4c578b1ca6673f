import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { readCredentialsDirectory } from '@jobfleet/afip';
import { loadConfigOrExit, tenantLimitChangeSchema } from '@jobfleet/config';
import { isValidCuit } from '@jobfleet/contracts';
import { flagDefinition, flagDefinitionSchema, flagKeySchema, fleetControlsChannel, switchChange, switchChangeSchema, switchTargetSchema } from '@jobfleet/controls';
import {
  API_KEY_SCOPES,
  ApiKeyError,
  ConnectionError,
  DEFAULT_ROTATION_GRACE_SECONDS,
  afipIssuerRepository,
  apiKeyExpirySchema,
  apiKeyNameSchema,
  calendarAccessOf,
  createApiKey,
  createTenant,
  featureFlagRepository,
  fleetSwitchRepository,
  googleConnectionRepository,
  listApiKeys,
  openDatabase,
  reencryptConnectionSecrets,
  revokeApiKey,
  rotateApiKey,
  rotationGraceSecondsSchema,
  serviceAccountCredential,
  serviceAccountKeySchema,
  tenantExists,
  tenantLimitsRepository,
  type ApiKeyScope,
  type CalendarAccess,
  type Db,
  type GoogleCredential,
} from '@jobfleet/db';
import { QUEUE_NAMES } from '@jobfleet/kinds';
import { createRedisConnection, waitUntilReady } from '@jobfleet/queue';
import { generateKeyringEntry, parseKeyring } from '@jobfleet/secrets';

const USAGE = `usage: npm run jobfleet -- <command>
  migrate                                       apply database migrations
  tenant create <id> --name <name>              create (or rename) a tenant
  tenant tier <tenantId> <tier | default>       set a tenant's tier (default: TENANT_DEFAULT_TIER's)
  tenant limits <tenantId> [--set '<json>' | --clear]
                    print a tenant's effective limits; --set replaces its overrides
                    (e.g. '{"requestsPerMinute":600,"kinds":{"afip-sync":{"jobsPerDay":500}}}'), --clear drops them
  key create <tenantId> [--scopes a,b] [--name n] [--expires <instant | 90d | 12h | 30m>]
                                                create an API key (printed once)
  key list <tenantId>                           a tenant's keys: scopes, last use, expiry, revocation (never the keys)
  key rotate <keyId> [--grace <seconds>]        a new key like this one (printed once); the old one
                                                works --grace seconds more (default ${DEFAULT_ROTATION_GRACE_SECONDS}; 0 revokes it now)
  key revoke <keyId>                            revoke an API key
  afip-issuer add <tenantId> --cuit <cuit> --cert <file.crt> --key <file.key>
  afip-issuer rotate <tenantId> --cuit <cuit> --cert <file.crt> --key <file.key>
  afip-issuer remove <tenantId> --cuit <cuit>
  afip-issuer list <tenantId>
  afip-issuer import <tenantId> --dir <dir>     every <cuit>.crt + <cuit>.key of a directory
  google-connection add <tenantId> (--service-account-key <file.json> | --refresh-token <t> --client-id <id> --client-secret <s>)
                    --calendars <a,b | credential>
  google-connection rotate <tenantId> [credential options] [--calendars …]
  google-connection remove <tenantId>
  google-connection show <tenantId>
  switch list                                   the kill switches that were set
  switch set <kind | tenant> <name> [--intake on|off] [--processing paused|running] [--reason <text>]
                    switch a job kind's or a tenant's intake off (503) or pause its processing
  flag list | flag show <key>                   feature flags
  flag set <key> --set '<json>'                 create or replace a flag (see the README for its fields)
  flag kill <key>                               turn a flag off: everyone gets its kill variant
  secrets generate-key <kid>                    print a new SECRETS_KEYS entry
  secrets re-encrypt                            re-wrap every connection secret under the active key
scopes: ${API_KEY_SCOPES.join(', ')} (default jobs:write,jobs:read)`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function parseScopes(raw: string | undefined): ApiKeyScope[] {
  const scopes = (raw ?? 'jobs:write,jobs:read').split(',').map((s) => s.trim());
  const unknown = scopes.filter((s) => !(API_KEY_SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0) fail(`unknown scope(s): ${unknown.join(', ')}`);
  return scopes as ApiKeyScope[];
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    name: { type: 'string' },
    scopes: { type: 'string' },
    cuit: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    dir: { type: 'string' },
    'service-account-key': { type: 'string' },
    'refresh-token': { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    calendars: { type: 'string' },
    expires: { type: 'string' },
    grace: { type: 'string' },
    set: { type: 'string' },
    clear: { type: 'boolean' },
    intake: { type: 'string' },
    processing: { type: 'string' },
    reason: { type: 'string' },
  },
});
const [command, sub, target, argument] = positionals;

function cuitOption(): number {
  const cuit = Number(values.cuit);
  if (!isValidCuit(cuit)) fail(`--cuit: not a valid CUIT (11 digits with check digit): ${values.cuit ?? '(missing)'}`);
  return cuit;
}

async function issuerFiles(): Promise<{ certificatePem: string; privateKeyPem: string }> {
  if (!values.cert || !values.key) fail('--cert and --key are required');
  const [certificatePem, privateKeyPem] = await Promise.all([readFile(values.cert, 'utf8'), readFile(values.key, 'utf8')]);
  return { certificatePem, privateKeyPem };
}

/** The credential named by the options, or undefined when none is given. */
async function googleCredential(): Promise<GoogleCredential | undefined> {
  const keyFile = values['service-account-key'];
  if (keyFile !== undefined) {
    const parsed = serviceAccountKeySchema.safeParse(JSON.parse(await readFile(keyFile, 'utf8')));
    if (!parsed.success) fail(`${keyFile} is not a Google service account key (type service_account, client_email, private_key)`);
    return serviceAccountCredential(parsed.data);
  }
  const refreshToken = values['refresh-token'];
  if (refreshToken !== undefined) {
    const clientId = values['client-id'];
    const clientSecret = values['client-secret'];
    if (!clientId || !clientSecret) fail('--refresh-token needs --client-id and --client-secret');
    return { kind: 'oauth-refresh-token', clientId, clientSecret, refreshToken };
  }
  return undefined;
}

function calendarAccess(): CalendarAccess | undefined {
  if (values.calendars === undefined) return undefined;
  if (values.calendars === 'credential') return calendarAccessOf('credential');
  const calendars = values.calendars.split(',').map((c) => c.trim()).filter(Boolean);
  if (calendars.length === 0) fail('--calendars: name at least one calendar, or "credential"');
  return calendarAccessOf(calendars);
}

/** The first message of a failed zod parse, for `fail`. */
function firstIssue(result: { error?: { issues: readonly { message: string }[] } }): string {
  return result.error?.issues[0]?.message ?? 'invalid';
}

function keyName(): string {
  const parsed = apiKeyNameSchema.safeParse(values.name ?? 'cli');
  if (!parsed.success) fail(`--name: ${firstIssue(parsed)}`);
  return parsed.data;
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 };
// An instant with its offset: without one, the same text would name another moment on another machine.
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/i;

/** --expires: an RFC 3339 instant, or a duration from now (90d, 12h, 30m); undefined: never. */
function keyExpiry(): Date | undefined {
  const raw = values.expires;
  if (raw === undefined) return undefined;
  const duration = /^(\d+)([mhd])$/.exec(raw);
  const unit = DURATION_UNIT_MS[duration?.[2] ?? ''];
  let at: Date | undefined;
  if (duration && unit !== undefined) at = new Date(Date.now() + Number(duration[1]) * unit);
  else if (INSTANT.test(raw)) at = new Date(raw);
  if (at === undefined || Number.isNaN(at.getTime())) fail(`--expires: an instant with offset (2027-01-31T00:00:00Z) or a duration (90d, 12h, 30m): ${raw}`);
  const parsed = apiKeyExpirySchema.safeParse(at);
  if (!parsed.success) fail(`--expires: ${firstIssue(parsed)}`);
  return parsed.data;
}

function graceSeconds(): number | undefined {
  if (values.grace === undefined) return undefined;
  const parsed = rotationGraceSecondsSchema.safeParse(/^\d+$/.test(values.grace) ? Number(values.grace) : Number.NaN);
  if (!parsed.success) fail(`--grace: whole seconds from 0 (revoke now) to 2592000 (30 days): ${values.grace}`);
  return parsed.data;
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

async function requireTenant(db: Db): Promise<string> {
  if (!target) fail('tenant id required');
  if (!(await tenantExists(db, target))) fail(`no tenant ${target} (create it with: tenant create ${target})`);
  return target;
}

function overridesOption(): unknown {
  if (values.set === undefined) return values.clear ? {} : undefined;
  if (values.clear) fail('--set and --clear exclude each other');
  try {
    return JSON.parse(values.set);
  } catch {
    fail('--set: not valid JSON');
  }
}

/** Stores a change of a tenant's limits, validated as the admin API validates it (configured tiers, registered kinds). */
async function changeLimits(db: Db, tenantId: string, change: unknown): Promise<void> {
  const parsed = tenantLimitChangeSchema(config.tenants.tiers, QUEUE_NAMES).safeParse(change);
  if (!parsed.success) fail(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'limits'}: ${issue.message}`).join('\n'));
  await tenantLimitsRepository.update(db, tenantId, parsed.data);
}

async function printLimits(db: Db, tenantId: string): Promise<void> {
  print(await tenantLimitsRepository.describe(db, config.tenants, tenantId, QUEUE_NAMES));
}

const CLI_ACTOR = { actor: `cli:${userInfo().username}`, actorTenantId: null };

/** --intake on|off and --processing paused|running as a switch change, validated as the admin API validates it. */
function switchChangeOptions() {
  const onOff = (raw: string | undefined, off: string, on: string, option: string) => {
    if (raw === undefined) return undefined;
    if (raw !== off && raw !== on) fail(`${option}: ${on} or ${off}`);
    return raw === off;
  };
  const intakeOn = onOff(values.intake, 'off', 'on', '--intake');
  const processing = onOff(values.processing, 'paused', 'running', '--processing');
  const change = {
    ...(intakeOn === undefined ? {} : { intakeOff: intakeOn }),
    ...(processing === undefined ? {} : { processingPaused: processing }),
    ...(values.reason === undefined ? {} : { reason: values.reason }),
  };
  const parsed = switchChangeSchema.safeParse(change);
  if (!parsed.success) fail(`switch set: ${firstIssue(parsed)}`);
  return parsed.data;
}

function flagKeyArgument(): string {
  const parsed = flagKeySchema.safeParse(target);
  if (!parsed.success) fail(`flag key: ${firstIssue(parsed)}`);
  return parsed.data;
}

/**
 * Tells every process that switches or flags changed. Without REDIS_URL, or with Redis down, they
 * see the change at their next poll (FLEET_CONTROLS_POLL_MS).
 */
async function announceChange(): Promise<void> {
  const note = `(every process applies it within ${config.controls.pollMs} ms by polling)`;
  if (config.redis.main === undefined) {
    process.stderr.write(`REDIS_URL is not set ${note}
`);
    return;
  }
  const redis = createRedisConnection(config.redis.main, 'producer', { name: 'jobfleet-cli', commandTimeoutMs: 2000 });
  try {
    if (!(await waitUntilReady(redis, 2000))) throw new Error('Redis is not reachable');
    await redis.publish(fleetControlsChannel(config.redis.prefix), String(Date.now()));
  } catch {
    process.stderr.write(`could not announce the change on Redis ${note}
`);
  } finally {
    redis.disconnect();
  }
}

if (`${command ?? ''} ${sub ?? ''}` === 'secrets generate-key') {
  if (!target) fail('key id required');
  process.stdout.write(`${generateKeyringEntry(target)}\n(append it to SECRETS_KEYS; it becomes active as the last entry or through SECRETS_ACTIVE_KEY_ID)\n`);
  process.exit(0);
}

const config = loadConfigOrExit();
const keyring = parseKeyring(config.secrets.keys, config.secrets.activeKeyId);
if (config.secrets.development && /^(afip-issuer|google-connection|secrets) /.test(`${command ?? ''} ${sub ?? ''}`)) {
  // Secrets sealed now are readable by anyone, and workers running with real keys cannot open them.
  process.stderr.write('warning: SECRETS_KEYS is not set; connection secrets use the public development key\n');
}
const database = openDatabase(config.database);
try {
  await database.migrate();
  const { db } = database;
  switch (`${command ?? ''} ${sub ?? ''}`.trim()) {
    case 'migrate':
      process.stdout.write('migrations applied\n');
      break;
    case 'tenant create':
      if (!target) fail('tenant id required');
      await createTenant(db, { id: target, name: values.name ?? target });
      process.stdout.write(`tenant ${target} ready\n`);
      break;
    case 'tenant tier': {
      const tenantId = await requireTenant(db);
      if (!argument) fail('a tier is required: a tier name, or "default"');
      await changeLimits(db, tenantId, { tier: argument === 'default' ? null : argument });
      await printLimits(db, tenantId);
      break;
    }
    case 'tenant limits': {
      const tenantId = await requireTenant(db);
      const overrides = overridesOption();
      if (overrides !== undefined) await changeLimits(db, tenantId, { overrides });
      await printLimits(db, tenantId);
      break;
    }
    case 'key create': {
      const options = { name: keyName(), scopes: parseScopes(values.scopes), expiresAt: keyExpiry() };
      const created = await createApiKey(db, { tenantId: await requireTenant(db), ...options });
      const expiry = created.expiresAt === null ? '' : `expires ${created.expiresAt.toISOString()}\n`;
      process.stdout.write(`key id ${created.id}\napi key ${created.key}\n${expiry}(store it now: only its sha256 is kept)\n`);
      break;
    }
    case 'key list':
      print(await listApiKeys(db, await requireTenant(db)));
      break;
    case 'key rotate': {
      if (!target) fail('key id required');
      const { key, previous } = await rotateApiKey(db, target, graceSeconds());
      const retired = previous.revokedAt === null ? `works until ${previous.expiresAt?.toISOString() ?? '(never)'}` : 'is revoked';
      const expiry = key.expiresAt === null ? '' : `expires ${key.expiresAt.toISOString()}\n`;
      process.stdout.write(
        `key id ${key.id}\napi key ${key.key}\n${expiry}replaces ${previous.id}, which ${retired}\n(store it now: only its sha256 is kept)\n`,
      );
      break;
    }
    case 'key revoke':
      if (!target) fail('key id required');
      process.stdout.write((await revokeApiKey(db, target)) ? `revoked ${target}\n` : `no active key ${target}\n`);
      break;
    case 'afip-issuer add':
      print(await afipIssuerRepository.add(db, keyring, { tenantId: await requireTenant(db), cuit: cuitOption(), ...(await issuerFiles()) }));
      break;
    case 'afip-issuer rotate':
      print(await afipIssuerRepository.rotate(db, keyring, { tenantId: await requireTenant(db), cuit: cuitOption(), ...(await issuerFiles()) }));
      break;
    case 'afip-issuer remove':
      await afipIssuerRepository.remove(db, { tenantId: await requireTenant(db), cuit: cuitOption() });
      process.stdout.write(`removed CUIT ${values.cuit ?? ''}\n`);
      break;
    case 'afip-issuer list':
      print(await afipIssuerRepository.list(db, await requireTenant(db)));
      break;
    case 'afip-issuer import': {
      const tenantId = await requireTenant(db);
      if (!values.dir) fail('--dir required');
      // Single-tenant deployments: the certificate directory they mounted before, into one tenant.
      const directory = await readCredentialsDirectory(values.dir);
      // Checked like --cuit, and before anything is stored, so a bad file name imports nothing.
      const invalid = directory.find((files) => !isValidCuit(files.cuit));
      if (invalid) fail(`${invalid.cuit}.crt: not a valid CUIT (11 digits with check digit)`);
      for (const files of directory) {
        const exists = await afipIssuerRepository.isOwnedBy(db, tenantId, files.cuit);
        const issuer = exists ? await afipIssuerRepository.rotate(db, keyring, { tenantId, ...files }) : await afipIssuerRepository.add(db, keyring, { tenantId, ...files });
        process.stdout.write(`${exists ? 'rotated' : 'added'} CUIT ${issuer.cuit} (certificate valid until ${issuer.certificate.notAfter})\n`);
      }
      break;
    }
    case 'google-connection add': {
      const tenantId = await requireTenant(db);
      const credential = await googleCredential();
      const access = calendarAccess();
      if (!credential) fail('a credential is required: --service-account-key, or --refresh-token with --client-id and --client-secret');
      if (!access) fail('--calendars is required: a comma-separated list, or "credential" (whatever the credential may write to)');
      print(await googleConnectionRepository.add(db, keyring, { tenantId, credential, access }));
      break;
    }
    case 'google-connection rotate': {
      const tenantId = await requireTenant(db);
      const credential = await googleCredential();
      const access = calendarAccess();
      if (!credential && !access) fail('give a new credential, --calendars, or both');
      print(await googleConnectionRepository.rotate(db, keyring, { tenantId, ...(credential ? { credential } : {}), ...(access ? { access } : {}) }));
      break;
    }
    case 'google-connection remove':
      await googleConnectionRepository.remove(db, await requireTenant(db));
      process.stdout.write('removed\n');
      break;
    case 'google-connection show':
      print((await googleConnectionRepository.find(db, await requireTenant(db))) ?? null);
      break;
    case 'switch list':
      print(await fleetSwitchRepository.list(db));
      break;
    case 'switch set': {
      const parsedTarget = switchTargetSchema(QUEUE_NAMES).safeParse({ scope: target, subject: argument });
      if (!parsedTarget.success) fail(`switch set: ${parsedTarget.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
      if (parsedTarget.data.scope === 'tenant' && !(await tenantExists(db, parsedTarget.data.subject))) fail(`no tenant ${parsedTarget.data.subject}`);
      print(await fleetSwitchRepository.set(db, switchChange(parsedTarget.data, switchChangeOptions()), CLI_ACTOR));
      await announceChange();
      break;
    }
    case 'flag list':
      print(await featureFlagRepository.list(db));
      break;
    case 'flag show':
      print((await featureFlagRepository.find(db, flagKeyArgument())) ?? null);
      break;
    case 'flag set': {
      const key = flagKeyArgument();
      const parsed = flagDefinitionSchema.safeParse(overridesOption());
      if (!parsed.success) fail(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'flag'}: ${issue.message}`).join('\n'));
      print(await featureFlagRepository.put(db, flagDefinition(key, parsed.data), CLI_ACTOR));
      await announceChange();
      break;
    }
    case 'flag kill': {
      const flag = await featureFlagRepository.turnOff(db, flagKeyArgument(), CLI_ACTOR);
      if (flag === undefined) fail(`no flag ${target ?? ''}`);
      print(flag);
      await announceChange();
      break;
    }
    case 'secrets re-encrypt': {
      const counts = await reencryptConnectionSecrets(db, keyring);
      process.stdout.write(`re-encrypted under key ${keyring.activeKeyId}: ${counts.afipIssuers} AFIP issuer(s), ${counts.googleConnections} Google connection(s)\n`);
      break;
    }
    default:
      fail(`unknown command: ${positionals.join(' ') || '(none)'}`);
  }
} catch (error) {
  if (!(error instanceof ConnectionError || error instanceof ApiKeyError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exitCode = 1;
} finally {
  await database.close();
}
