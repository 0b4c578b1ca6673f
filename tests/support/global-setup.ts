import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase } from '@jobfleet/db';
import { ADMIN_DATABASE_URL, TEMPLATE_DB_ENV, databaseUrl } from './env';

/** Migrates one template database per test run; each test file clones it (CREATE DATABASE ... TEMPLATE). */
export default async function globalSetup(): Promise<void> {
  const name = `jobfleet_tpl_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const database = openDatabase({ url: databaseUrl(name), dataDir: '.data', poolMax: 1 });
  try {
    await database.migrate();
  } finally {
    await database.close();
  }
  process.env[TEMPLATE_DB_ENV] = name;
}
