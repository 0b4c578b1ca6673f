import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '@jobfleet/config';
import { openDatabase, verifyLockAuditChains } from '@jobfleet/db';
import { parseKeyring } from '@jobfleet/secrets';

// `npm run locks:verify-audit [-- --chain <lock key>]`: walks the lock audit hash chains and
// exits 1 when any is broken, printing the first broken link of each. The keyring (SECRETS_KEYS)
// checks the signed checkpoints that chains cut by retention start from.
const { values } = parseArgs({ options: { chain: { type: 'string' } } });
const config = loadConfigOrExit();
const database = openDatabase(config.database);
try {
  const result = await verifyLockAuditChains(database.db, {
    chain: values.chain,
    keyring: parseKeyring(config.secrets.keys, config.secrets.activeKeyId),
    onChain: ({ chain, rows, broken }) =>
      process.stdout.write(
        broken
          ? `BROKEN ${chain} rows=${rows} first broken link: seq=${broken.seq} id=${broken.id ?? 'checkpoint'} reason=${broken.reason}\n`
          : `ok     ${chain} rows=${rows}\n`,
      ),
  });
  process.stdout.write(`${result.chains} chains, ${result.rows} rows, ${result.broken.length} broken\n`);
  if (result.broken.length > 0) process.exitCode = 1;
} finally {
  await database.close();
}
