import type { FeatureFlag } from '@jobfleet/db';
import { resolveFlag, rolloutBucket, snapshotOf } from './snapshot';

const flag = (overrides: Partial<FeatureFlag> = {}): FeatureFlag => ({
  key: 'calendar-sync.minimal-patch',
  description: '',
  enabled: true,
  variants: { on: true, off: false, broken: false },
  rolloutVariant: 'on',
  defaultVariant: 'off',
  killVariant: 'broken',
  tenants: [],
  percentage: 0,
  disabledReason: null,
  updatedBy: 'operator:test',
  updatedAt: new Date(0),
  ...overrides,
});

describe('flag resolution', () => {
  it('serves the kill variant to everyone while the flag is off, listed tenants included', () => {
    expect(resolveFlag(flag({ enabled: false, tenants: ['acme'], percentage: 100 }), 'acme')).toEqual({ variant: 'broken', value: false, reason: 'DISABLED', rollout: false });
  });

  it('serves the rollout variant to listed tenants and the default to the others and to no tenant', () => {
    const listed = flag({ tenants: ['acme'] });
    expect(resolveFlag(listed, 'acme')).toEqual({ variant: 'on', value: true, reason: 'TARGETING_MATCH', rollout: true });
    expect(resolveFlag(listed, 'globex')).toEqual({ variant: 'off', value: false, reason: 'DEFAULT', rollout: false });
    expect(resolveFlag(flag({ percentage: 100 }), undefined)).toMatchObject({ variant: 'off', reason: 'DEFAULT' });
  });

  it('rolls out to about the percentage of tenants, the same ones every time, and to more of them as it grows', () => {
    const tenants = Array.from({ length: 2000 }, (_, index) => `tenant-${index}`);
    const servedAt = (percentage: number) => tenants.filter((tenantId) => resolveFlag(flag({ percentage }), tenantId).reason === 'SPLIT');
    const tenPercent = servedAt(10);
    expect(tenPercent.length).toBeGreaterThan(140);
    expect(tenPercent.length).toBeLessThan(260);
    expect(servedAt(10)).toEqual(tenPercent);
    expect(servedAt(0)).toEqual([]);
    expect(servedAt(100)).toHaveLength(2000);
    const thirty = new Set(servedAt(30));
    expect(tenPercent.every((tenantId) => thirty.has(tenantId))).toBe(true);
    // Each flag draws its own tenants.
    expect(rolloutBucket('a.flag', 'tenant-1')).not.toBe(rolloutBucket('b.flag', 'tenant-1'));
  });
});

describe('switch lookup', () => {
  const at = new Date(0);
  const snapshot = snapshotOf(
    [
      { scope: 'kind', subject: 'afip-sync', intakeOff: true, processingPaused: false, reason: 'AFIP maintenance', updatedBy: 'cli:ops', updatedAt: at },
      { scope: 'tenant', subject: 'acme', intakeOff: false, processingPaused: true, reason: null, updatedBy: 'cli:ops', updatedAt: at },
    ],
    [],
  );

  it("answers a kind's switch for every tenant and a tenant's for every kind, and nothing for the rest", () => {
    expect(snapshot.intakeClosed('afip-sync', 'globex')).toEqual({ scope: 'kind', subject: 'afip-sync', reason: 'AFIP maintenance' });
    expect(snapshot.intakeClosed('calendar-sync', 'acme')).toBeUndefined();
    expect(snapshot.processingPaused('calendar-sync', 'acme')).toEqual({ scope: 'tenant', subject: 'acme', reason: null });
    expect(snapshot.processingPaused('afip-sync', 'globex')).toBeUndefined();
    expect(snapshot.processingPaused('backup', undefined)).toBeUndefined();
  });
});
