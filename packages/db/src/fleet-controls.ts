import { and, eq } from 'drizzle-orm';
import { adminAuditRepository } from './admin-audit';
import type { Db } from './client';
import { featureFlags, fleetSwitches, type SwitchScope } from './schema';

/** Who changes fleet state, as the admin audit records it. */
export interface FleetActor {
  actor: string;
  actorTenantId: string | null;
}

export interface FleetSwitch {
  scope: SwitchScope;
  subject: string;
  intakeOff: boolean;
  processingPaused: boolean;
  reason: string | null;
  updatedBy: string;
  updatedAt: Date;
}

/** A change of one switch: the fields left out keep their value (false for a new switch). */
export interface FleetSwitchChange {
  scope: SwitchScope;
  subject: string;
  intakeOff?: boolean;
  processingPaused?: boolean;
  reason?: string | null;
}

export type FlagValue = boolean | string | number | Record<string, unknown>;

export interface FeatureFlagDefinition {
  key: string;
  description: string;
  enabled: boolean;
  variants: Record<string, FlagValue>;
  rolloutVariant: string;
  defaultVariant: string;
  killVariant: string;
  tenants: string[];
  percentage: number;
}

export interface FeatureFlag extends FeatureFlagDefinition {
  disabledReason: string | null;
  updatedBy: string;
  updatedAt: Date;
}

const switchView = (row: typeof fleetSwitches.$inferSelect): FleetSwitch => ({ ...row });
type FlagRow = typeof featureFlags.$inferSelect;

const flagView = (row: FlagRow): FeatureFlag => ({ ...row, variants: row.variants as Record<string, FlagValue> });

/** Kill switches: each change and its audit row commit together. */
export const fleetSwitchRepository = {
  async list(db: Db): Promise<FleetSwitch[]> {
    return (await db.select().from(fleetSwitches).orderBy(fleetSwitches.scope, fleetSwitches.subject)).map(switchView);
  },

  /** Sets one switch and records who did it, with the values before and after. */
  async set(db: Db, change: FleetSwitchChange, by: FleetActor): Promise<FleetSwitch> {
    return db.transaction(async (tx) => {
      const where = and(eq(fleetSwitches.scope, change.scope), eq(fleetSwitches.subject, change.subject));
      const [before] = await tx.select().from(fleetSwitches).where(where).for('update');
      const values = {
        intakeOff: change.intakeOff ?? before?.intakeOff ?? false,
        processingPaused: change.processingPaused ?? before?.processingPaused ?? false,
        reason: change.reason === undefined ? (before?.reason ?? null) : change.reason,
        updatedBy: by.actor,
        updatedAt: new Date(),
      };
      const [after] = await tx
        .insert(fleetSwitches)
        .values({ scope: change.scope, subject: change.subject, ...values })
        .onConflictDoUpdate({ target: [fleetSwitches.scope, fleetSwitches.subject], set: values })
        .returning();
      if (after === undefined) throw new Error('the switch upsert returned no row');
      const state = (row: typeof before) => (row === undefined ? null : { intakeOff: row.intakeOff, processingPaused: row.processingPaused, reason: row.reason });
      await adminAuditRepository.append(tx, [
        {
          ...by,
          action: 'switch.set',
          tenantId: change.scope === 'tenant' ? change.subject : null,
          target: { scope: change.scope, subject: change.subject },
          detail: { before: state(before), after: state(after) },
        },
      ]);
      return switchView(after);
    });
  },
};

/** Feature flags: each change and its audit row commit together. */
export const featureFlagRepository = {
  async list(db: Db): Promise<FeatureFlag[]> {
    return (await db.select().from(featureFlags).orderBy(featureFlags.key)).map(flagView);
  },

  async find(db: Db, key: string): Promise<FeatureFlag | undefined> {
    const [row] = await db.select().from(featureFlags).where(eq(featureFlags.key, key));
    return row === undefined ? undefined : flagView(row);
  },

  /** Creates or replaces a flag's definition; turning it on clears the reason of an earlier rollback. */
  async put(db: Db, definition: FeatureFlagDefinition, by: FleetActor): Promise<FeatureFlag> {
    return db.transaction(async (tx) => writeFlag(tx, await lockedFlagRow(tx, definition.key), definition, by));
  },

  /** An operator's kill: the flag as it is, off (everyone gets its kill variant). Undefined: no such flag. */
  async turnOff(db: Db, key: string, by: FleetActor): Promise<FeatureFlag | undefined> {
    // Read under the row lock: a concurrent change either lands before (and is kept) or waits.
    return db.transaction(async (tx) => {
      const before = await lockedFlagRow(tx, key);
      return before && writeFlag(tx, before, { ...definitionOf(flagView(before)), enabled: false }, by);
    });
  },

  /**
   * Turns an enabled flag off with the reason, audited as `flag.rollback`. False when it was off
   * already (another process rolled it back first, or an operator did): only one records it.
   */
  async rollback(db: Db, key: string, reason: string, detail: Record<string, unknown>, by: FleetActor): Promise<boolean> {
    return db.transaction(async (tx) => {
      const rows = await tx
        .update(featureFlags)
        .set({ enabled: false, disabledReason: reason, updatedBy: by.actor, updatedAt: new Date() })
        .where(and(eq(featureFlags.key, key), eq(featureFlags.enabled, true)))
        .returning({ key: featureFlags.key });
      if (rows.length === 0) return false;
      await adminAuditRepository.append(tx, [{ ...by, action: 'flag.rollback', target: { flag: key }, detail: { reason, ...detail } }]);
      return true;
    });
  },
};

async function lockedFlagRow(tx: Db, key: string): Promise<FlagRow | undefined> {
  const [row] = await tx.select().from(featureFlags).where(eq(featureFlags.key, key)).for('update');
  return row;
}

/** Writes a definition over the locked row `before` (undefined: a new flag) and audits it as `flag.set`. */
async function writeFlag(tx: Db, before: FlagRow | undefined, definition: FeatureFlagDefinition, by: FleetActor): Promise<FeatureFlag> {
  const values = {
    ...definition,
    disabledReason: definition.enabled ? null : (before?.disabledReason ?? null),
    updatedBy: by.actor,
    updatedAt: new Date(),
  };
  const [after] = await tx.insert(featureFlags).values(values).onConflictDoUpdate({ target: featureFlags.key, set: values }).returning();
  if (after === undefined) throw new Error('the flag upsert returned no row');
  await adminAuditRepository.append(tx, [
    { ...by, action: 'flag.set', target: { flag: definition.key }, detail: { before: before === undefined ? null : definitionOf(flagView(before)), after: definition } },
  ]);
  return flagView(after);
}

function definitionOf(flag: FeatureFlag): FeatureFlagDefinition {
  const { disabledReason: _reason, updatedBy: _by, updatedAt: _at, ...definition } = flag;
  return definition;
}
