import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '@jobfleet/config';
import { API_KEY_SCOPES, createApiKey, createTenant, openDatabase, revokeApiKey, type ApiKeyScope } from '@jobfleet/db';

const USAGE = `usage: npm run jobfleet -- <command>
  migrate                                       apply database migrations
  tenant create <id> --name <name>              create (or rename) a tenant
  key create <tenantId> [--scopes a,b] [--name n]  create an API key (printed once)
  key revoke <keyId>                            revoke an API key
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
  options: { name: { type: 'string' }, scopes: { type: 'string' } },
});
const [command, sub, target] = positionals;
const config = loadConfigOrExit();
const database = openDatabase(config.database);
try {
  await database.migrate();
  switch (`${command ?? ''} ${sub ?? ''}`.trim()) {
    case 'migrate':
      process.stdout.write('migrations applied\n');
      break;
    case 'tenant create':
      if (!target) fail('tenant id required');
      await createTenant(database.db, { id: target, name: values.name ?? target });
      process.stdout.write(`tenant ${target} ready\n`);
      break;
    case 'key create': {
      if (!target) fail('tenant id required');
      const created = await createApiKey(database.db, { tenantId: target, name: values.name ?? 'cli', scopes: parseScopes(values.scopes) });
      process.stdout.write(`key id ${created.id}\napi key ${created.key}\n(store it now: only its sha256 is kept)\n`);
      break;
    }
    case 'key revoke':
      if (!target) fail('key id required');
      process.stdout.write((await revokeApiKey(database.db, target)) ? `revoked ${target}\n` : `no active key ${target}\n`);
      break;
    default:
      fail(`unknown command: ${positionals.join(' ') || '(none)'}`);
  }
} finally {
  await database.close();
}
