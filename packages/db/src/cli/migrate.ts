import { loadConfigOrExit } from '@jobfleet/config';
import { openDatabase } from '../client';

// `npm run db:migrate`: applies the committed migrations once per rollout (advisory-locked).
const config = loadConfigOrExit();
const database = openDatabase(config.database);
try {
  await database.migrate();
  process.stdout.write(`migrations applied (${database.dialect})\n`);
} finally {
  await database.close();
}
