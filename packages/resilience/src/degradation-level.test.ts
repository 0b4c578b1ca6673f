import { describe, expect, it } from '@jest/globals';
import { loadConfig } from '@jobfleet/config';
import { intakeRefusal, mayTakeJobs, nextDegradationState, requestLimitFactor, type DegradationSignals, type DegradationState } from './degradation-level';

const thresholds = {
  holdMs: 30_000,
  clearRatio: 0.9,
  oldestJobAgeMs: 60_000,
  redisMemoryRatio: { limited: 0.7, minimal: 0.85, emergency: 0.95 },
  workersGoneRatio: 0.5,
  workersWindowMs: 600_000,
};
const calm: DegradationSignals = { openBreakers: [], oldestJobAgeMs: 0, redisMemoryRatio: 0.1, postgresAvailable: true, workers: { alive: 4, established: 4 } };
const pgMiss: DegradationSignals = { ...calm, postgresAvailable: false };

/** Runs the signals through the state machine, one evaluation every 5 s from t0; the levels seen. */
function run(signals: readonly DegradationSignals[], start?: DegradationState): { levels: string[]; state: DegradationState | undefined } {
  let state = start;
  const levels: string[] = [];
  signals.forEach((s, i) => {
    state = nextDegradationState(state, s, thresholds, 1_000_000 + i * 5000);
    levels.push(state.level);
  });
  return { levels, state };
}

describe('nextDegradationState', () => {
  it('raises each level from its own signal at once', () => {
    expect(run([{ ...calm, openBreakers: ['calendar'] }]).levels).toEqual(['DEGRADED']);
    expect(run([{ ...calm, oldestJobAgeMs: 60_000 }]).levels).toEqual(['LIMITED']);
    expect(run([{ ...calm, redisMemoryRatio: 0.7 }]).levels).toEqual(['LIMITED']);
    expect(run([{ ...calm, redisMemoryRatio: 0.86 }]).levels).toEqual(['MINIMAL']);
    expect(run([pgMiss, pgMiss]).levels).toEqual(['NORMAL', 'MINIMAL']);
    expect(run([{ ...calm, redisMemoryRatio: 0.96 }]).levels).toEqual(['EMERGENCY']);
    expect(run([calm, { ...calm, workers: { alive: 1, established: 1 } }]).levels).toEqual(['NORMAL', 'EMERGENCY']);
  });

  it('takes the highest level any raised condition points to', () => {
    const everything = { ...pgMiss, openBreakers: ['afip-wsfe'], oldestJobAgeMs: 120_000 };
    const { state } = run([everything, everything]);
    expect(state?.level).toBe('MINIMAL');
    expect(state?.raised).toEqual(['breakerOpen', 'oldestJobAge', 'postgresDown']);
  });

  it('does not count workers gone when no worker was ever seen', () => {
    expect(run([{ ...calm, workers: { alive: 0, established: 0 } }, { ...calm, workers: { alive: 0, established: 0 } }]).levels).toEqual(['NORMAL', 'NORMAL']);
  });

  it('sets the peak from established workers only: a crashed one still counted beside its replacement does not inflate it', () => {
    // 3 workers; two die and are still counted while their replacements start (5 alive, 3 established);
    // then 2 alive: below half of 5, not below half of 3.
    const { levels } = run([{ ...calm, workers: { alive: 3, established: 3 } }, { ...calm, workers: { alive: 5, established: 3 } }, { ...calm, workers: { alive: 2, established: 2 } }]);
    expect(levels).toEqual(['NORMAL', 'NORMAL', 'NORMAL']);
  });

  it('forgets a worker peak once it leaves the window', () => {
    let state = nextDegradationState(undefined, { ...calm, workers: { alive: 10, established: 10 } }, thresholds, 0);
    state = nextDegradationState(state, { ...calm, workers: { alive: 2, established: 2 } }, thresholds, thresholds.workersWindowMs + 1);
    expect(state.raised).not.toContain('workersGone');
  });

  it('does not flap while a signal oscillates inside the hysteresis band', () => {
    // Raised at 0.7, cleared only below 0.63: 0.66 ↔ 0.71 keeps LIMITED, never steps down.
    const oscillating = Array.from({ length: 40 }, (_, i) => ({ ...calm, redisMemoryRatio: i % 2 === 0 ? 0.71 : 0.66 }));
    expect(new Set(run(oscillating).levels)).toEqual(new Set(['LIMITED']));
    // The same below the threshold before it was ever crossed: never raised.
    expect(new Set(run(oscillating.slice(1).map((s) => ({ ...s, redisMemoryRatio: 0.66 }))).levels)).toEqual(new Set(['NORMAL']));
  });

  it('steps down only after the lower conditions held for holdMs, then to the highest level seen meanwhile', () => {
    const raised = run([{ ...calm, redisMemoryRatio: 0.96 }]).state;
    // 20 s at LIMITED's band, then calm: the hold (from the first lower reading) ends on LIMITED.
    const lower = [...Array<DegradationSignals>(4).fill({ ...calm, redisMemoryRatio: 0.72 }), ...Array<DegradationSignals>(13).fill(calm)];
    const { levels } = run(lower, raised);
    expect(levels.slice(0, 6)).toEqual(Array(6).fill('EMERGENCY'));
    expect(levels[6]).toBe('LIMITED');
    // From LIMITED a new hold starts at the next reading: 30 s more before NORMAL.
    expect(levels.slice(7, 13)).toEqual(Array(6).fill('LIMITED'));
    expect(levels[13]).toBe('NORMAL');
  });

  it('restarts the hold when the signal comes back before it ends', () => {
    const raised = run([pgMiss, pgMiss]).state;
    const { levels } = run([calm, calm, pgMiss, pgMiss, ...Array<DegradationSignals>(6).fill(calm), calm], raised);
    expect(levels.slice(0, 10)).toEqual(Array(10).fill('MINIMAL'));
    expect(levels[10]).toBe('NORMAL');
  });

  it('counts Postgres down only after two failed pings in a row: one late ping is not an outage', () => {
    expect(run([pgMiss, calm, pgMiss, calm, pgMiss]).levels).toEqual(Array(5).fill('NORMAL'));
    // A ping not tried (undefined) neither breaks nor extends the run of misses.
    expect(run([pgMiss, { ...calm, postgresAvailable: undefined }, pgMiss]).levels).toEqual(['NORMAL', 'NORMAL', 'MINIMAL']);
    // A state stored before misses were counted: the count starts from zero.
    const { postgresMisses: _dropped, ...stored } = nextDegradationState(undefined, calm, thresholds, 0);
    expect(run([pgMiss, pgMiss], stored).levels).toEqual(['NORMAL', 'MINIMAL']);
  });

  it('keeps a condition as it was when its signal could not be read', () => {
    const raised = run([pgMiss, pgMiss]).state;
    const { levels } = run(Array<DegradationSignals>(10).fill({ ...calm, postgresAvailable: undefined, redisMemoryRatio: undefined }), raised);
    expect(new Set(levels)).toEqual(new Set(['MINIMAL']));
  });

  it('recovers to NORMAL within 2 minutes of the signal clearing with the default settings', () => {
    const { degradation } = loadConfig({});
    // A step down needs holdMs of calm readings, and the first is taken at most one interval after the signal cleared.
    expect(degradation.holdMs + degradation.intervalMs).toBeLessThanOrEqual(120_000);
    const raised = nextDegradationState(undefined, { ...calm, redisMemoryRatio: 0.99 }, degradation, 0);
    let state = raised;
    for (let t = degradation.intervalMs; state.level !== 'NORMAL'; t += degradation.intervalMs) {
      expect(t).toBeLessThanOrEqual(120_000);
      state = nextDegradationState(state, calm, degradation, t);
    }
  });
});

describe('what each level sheds', () => {
  const single = (priority: boolean) => ({ batch: false, lowPriority: false, priorityTier: () => Promise.resolve(priority) });
  const batch = { batch: true, lowPriority: false, priorityTier: () => Promise.resolve(true) };
  const backup = { batch: false, lowPriority: true, priorityTier: () => Promise.resolve(true) };

  it('refuses intake as the README says', async () => {
    const judged = async (level: Parameters<typeof intakeRefusal>[0]) =>
      [await intakeRefusal(level, single(false)), await intakeRefusal(level, single(true)), await intakeRefusal(level, batch), await intakeRefusal(level, backup)].map(
        (why) => (why === undefined ? 'accepted' : 'refused'),
      );
    expect(await judged('NORMAL')).toEqual(['accepted', 'accepted', 'accepted', 'accepted']);
    expect(await judged('DEGRADED')).toEqual(['accepted', 'accepted', 'accepted', 'accepted']);
    expect(await judged('LIMITED')).toEqual(['accepted', 'accepted', 'refused', 'refused']);
    expect(await judged('MINIMAL')).toEqual(['refused', 'accepted', 'refused', 'refused']);
    expect(await judged('EMERGENCY')).toEqual(['refused', 'refused', 'refused', 'refused']);
  });

  it('tightens request limits from LIMITED up', () => {
    expect(['NORMAL', 'DEGRADED', 'LIMITED', 'MINIMAL', 'EMERGENCY'].map((level) => requestLimitFactor(level as 'NORMAL', 0.5))).toEqual([1, 1, 0.5, 0.5, 0.5]);
  });

  it('stops workers taking jobs at EMERGENCY, and at MINIMAL only while Postgres is down', () => {
    expect(mayTakeJobs('LIMITED', ['oldestJobAge'])).toBe(true);
    expect(mayTakeJobs('MINIMAL', ['redisMemoryMinimal'])).toBe(true);
    expect(mayTakeJobs('MINIMAL', ['postgresDown'])).toBe(false);
    expect(mayTakeJobs('EMERGENCY', ['workersGone'])).toBe(false);
  });
});
