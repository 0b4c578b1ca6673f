import { createHash } from 'node:crypto';
import type { FeatureFlag, FleetSwitch, FlagValue } from '@jobfleet/db';

/** Why a flag served its variant, in OpenFeature's standard reasons. */
export type FlagReason = 'DISABLED' | 'TARGETING_MATCH' | 'SPLIT' | 'DEFAULT';

export interface FlagResolution {
  variant: string;
  value: FlagValue | undefined;
  reason: FlagReason;
  /** The variant being rolled out was served: its outcomes are watched for the automatic rollback. */
  rollout: boolean;
}

/** Which switch closes intake, or pauses processing, of a job: its kind's or its tenant's. */
export interface SwitchHit {
  scope: FleetSwitch['scope'];
  subject: string;
  reason: string | null;
}

/** The kill switches and flags of the fleet as one process last read them; answers without I/O. */
export interface FleetControlsSnapshot {
  readonly switches: readonly FleetSwitch[];
  readonly flags: ReadonlyMap<string, FeatureFlag>;
  /** The switch refusing new jobs of `kind` for `tenantId`, if any (the kind's first). */
  intakeClosed(kind: string, tenantId: string | undefined): SwitchHit | undefined;
  /** The switch holding jobs of `kind` for `tenantId` back, if any (the kind's first). */
  processingPaused(kind: string, tenantId: string | undefined): SwitchHit | undefined;
  /** `flag`'s variant for `tenantId` (the targeting key); undefined when no such flag exists. */
  resolveFlag(key: string, tenantId: string | undefined): FlagResolution | undefined;
}

/** 0 to 99.99: where a tenant falls in a flag's percentage rollout, the same in every process and across restarts. */
export function rolloutBucket(flagKey: string, tenantId: string): number {
  // Hashing the key with the tenant gives each flag its own draw of tenants.
  return createHash('sha256').update(JSON.stringify([flagKey, tenantId])).digest().readUInt32BE(0) % 10_000 / 100;
}

export function resolveFlag(flag: FeatureFlag, tenantId: string | undefined): FlagResolution {
  const serve = (variant: string, reason: FlagReason): FlagResolution => ({
    variant,
    value: flag.variants[variant],
    reason,
    rollout: reason === 'TARGETING_MATCH' || reason === 'SPLIT',
  });
  if (!flag.enabled) return serve(flag.killVariant, 'DISABLED');
  if (tenantId === undefined) return serve(flag.defaultVariant, 'DEFAULT');
  if (flag.tenants.includes(tenantId)) return serve(flag.rolloutVariant, 'TARGETING_MATCH');
  if (rolloutBucket(flag.key, tenantId) < flag.percentage) return serve(flag.rolloutVariant, 'SPLIT');
  return serve(flag.defaultVariant, 'DEFAULT');
}

export function snapshotOf(switches: readonly FleetSwitch[], flags: readonly FeatureFlag[]): FleetControlsSnapshot {
  const active = (pick: (entry: FleetSwitch) => boolean) => {
    const byKey = new Map(switches.filter(pick).map((entry) => [JSON.stringify([entry.scope, entry.subject]), entry]));
    return (kind: string, tenantId: string | undefined): SwitchHit | undefined => {
      const hit = byKey.get(JSON.stringify(['kind', kind])) ?? (tenantId === undefined ? undefined : byKey.get(JSON.stringify(['tenant', tenantId])));
      return hit && { scope: hit.scope, subject: hit.subject, reason: hit.reason };
    };
  };
  const byKey = new Map(flags.map((flag) => [flag.key, flag]));
  return {
    switches,
    flags: byKey,
    intakeClosed: active((entry) => entry.intakeOff),
    processingPaused: active((entry) => entry.processingPaused),
    resolveFlag: (key, tenantId) => {
      const flag = byKey.get(key);
      return flag && resolveFlag(flag, tenantId);
    },
  };
}

/** Before the first read: nothing is switched off and no flag exists (callers get their defaults). */
export const EMPTY_SNAPSHOT = snapshotOf([], []);
