import { eq, sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { adminAuditRepository } from './admin-audit';
import { featureFlagRepository, fleetSwitchRepository, type FeatureFlagDefinition } from './fleet-controls';
import { featureFlags } from './schema';

const OPERATOR = { actor: 'operator:ops', actorTenantId: null };
const SYSTEM = { actor: 'system:flag-rollback', actorTenantId: null };

/** An enabled on/off flag rolled out to `tenants`. */
const rolledOutTo = (key: string, tenants: string[]): FeatureFlagDefinition => ({
  key,
  description: '',
  enabled: true,
  variants: { on: true, off: false },
  rolloutVariant: 'on',
  defaultVariant: 'off',
  killVariant: 'off',
  tenants,
  percentage: 0,
});

describe('fleet switches and feature flags', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
  });
  afterAll(() => testDb.drop());

  it('changes only the fields a switch change names, and audits each change with the values before and after', async () => {
    const { db } = testDb.database;
    await fleetSwitchRepository.set(db, { scope: 'tenant', subject: 'acme', intakeOff: true, reason: 'abuse' }, OPERATOR);
    const paused = await fleetSwitchRepository.set(db, { scope: 'tenant', subject: 'acme', processingPaused: true }, OPERATOR);
    expect(paused).toMatchObject({ intakeOff: true, processingPaused: true, reason: 'abuse', updatedBy: 'operator:ops' });
    expect(await fleetSwitchRepository.list(db)).toHaveLength(1);
    const audit = await adminAuditRepository.list(db, { action: 'switch.set', limit: 5 });
    expect(audit.map((row) => row.detail)).toEqual([
      { before: { intakeOff: true, processingPaused: false, reason: 'abuse' }, after: { intakeOff: true, processingPaused: true, reason: 'abuse' } },
      { before: null, after: { intakeOff: true, processingPaused: false, reason: 'abuse' } },
    ]);
    expect(audit[0]).toMatchObject({ actor: 'operator:ops', tenantId: 'acme', target: { scope: 'tenant', subject: 'acme' } });
  });

  it('rolls an enabled flag back once, whoever asks first; turning it on again clears the reason', async () => {
    const { db } = testDb.database;
    const definition = rolledOutTo('x.new-path', ['acme']);
    await featureFlagRepository.put(db, definition, OPERATOR);
    const [first, second] = await Promise.all([
      featureFlagRepository.rollback(db, 'x.new-path', 'too many failures', { ratio: 0.5 }, SYSTEM),
      featureFlagRepository.rollback(db, 'x.new-path', 'too many failures', { ratio: 0.5 }, SYSTEM),
    ]);
    expect([first, second].sort()).toEqual([false, true]);
    expect(await featureFlagRepository.find(db, 'x.new-path')).toMatchObject({ enabled: false, disabledReason: 'too many failures', updatedBy: 'system:flag-rollback' });
    expect(await adminAuditRepository.list(db, { action: 'flag.rollback', limit: 5 })).toMatchObject([{ actor: 'system:flag-rollback', detail: { reason: 'too many failures', ratio: 0.5 } }]);

    expect(await featureFlagRepository.put(db, definition, OPERATOR)).toMatchObject({ enabled: true, disabledReason: null });
    expect(await featureFlagRepository.turnOff(db, 'x.new-path', OPERATOR)).toMatchObject({ enabled: false, tenants: ['acme'], disabledReason: null });
    expect(await featureFlagRepository.turnOff(db, 'no.such-flag', OPERATOR)).toBeUndefined();
  });

  it('turns a flag off from its state after a concurrent change commits, keeping that change', async () => {
    const { db } = testDb.database;
    await featureFlagRepository.put(db, rolledOutTo('x.raced', ['acme']), OPERATOR);
    let commitChange!: () => void;
    let changeLocked!: () => void;
    const locked = new Promise<void>((resolve) => (changeLocked = resolve));
    // A concurrent change holds the row lock until the kill is waiting for it.
    const change = db.transaction(async (tx) => {
      await tx.select().from(featureFlags).where(eq(featureFlags.key, 'x.raced')).for('update');
      await tx.update(featureFlags).set({ tenants: ['acme', 'globex'] }).where(eq(featureFlags.key, 'x.raced'));
      changeLocked();
      await new Promise<void>((resolve) => (commitChange = resolve));
    });
    await locked;
    const turnedOff = featureFlagRepository.turnOff(db, 'x.raced', OPERATOR);
    const waitingOnLock = () =>
      testDb.database.rows<{ n: number }>(sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`);
    while ((await waitingOnLock())[0]?.n !== 1) await new Promise((resolve) => setTimeout(resolve, 10));
    commitChange();
    await change;
    expect(await turnedOff).toMatchObject({ enabled: false, tenants: ['acme', 'globex'] });
    expect(await featureFlagRepository.find(db, 'x.raced')).toMatchObject({ enabled: false, tenants: ['acme', 'globex'] });
  });
});
