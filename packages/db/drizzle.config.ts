import { defineConfig } from 'drizzle-kit';

// Generates SQL from the schema; no database connection is needed for `generate`.
export default defineConfig({
  dialect: 'postgresql',
  schema: './packages/db/src/schema.ts',
  out: './migrations',
});
