import type { DegradationConfig } from '@jobfleet/config';

/**
 * The fleet-wide degradation level, and the one function that moves it: from the signals the
 * evaluator measured and the state it stored last time, the next state. Pure, so every branch of
 * the hysteresis is tested without Redis or clocks.
 */
export const DEGRADATION_LEVELS = ['NORMAL', 'DEGRADED', 'LIMITED', 'MINIMAL', 'EMERGENCY'] as const;
export type DegradationLevel = (typeof DEGRADATION_LEVELS)[number];

/** 0 (NORMAL) to 4 (EMERGENCY): the metric's value, and how levels compare. */
export const levelRank = (level: DegradationLevel): number => DEGRADATION_LEVELS.indexOf(level);

/**
 * What the evaluator measured. `undefined`: could not be read this time (the condition keeps its
 * state); `null`: not measured at all (no memory limit is known), which never raises anything.
 */
export interface DegradationSignals {
  /** Dependencies whose breaker is open or half-open somewhere in the fleet (the breaker view). */
  openBreakers: string[] | undefined;
  /** Age of the oldest job next in line, over every queue; 0 with nothing waiting. */
  oldestJobAgeMs: number | undefined;
  /** used_memory / maxmemory of the fullest Redis instance. */
  redisMemoryRatio: number | null | undefined;
  postgresAvailable: boolean | undefined;
  /**
   * Worker processes alive now (each announces itself every interval), and how many of them have
   * been for a while: only those set the peak, so a crashed worker still counted while its
   * replacement starts does not inflate it.
   */
  workers: { alive: number; established: number } | undefined;
}

/** A condition of one level; several may raise the same level. */
const CONDITIONS = {
  breakerOpen: 'DEGRADED',
  oldestJobAge: 'LIMITED',
  redisMemoryLimited: 'LIMITED',
  redisMemoryMinimal: 'MINIMAL',
  postgresDown: 'MINIMAL',
  redisMemoryEmergency: 'EMERGENCY',
  workersGone: 'EMERGENCY',
} as const satisfies Record<string, DegradationLevel>;
export type DegradationCondition = keyof typeof CONDITIONS;

export interface DegradationState {
  level: DegradationLevel;
  /** Since when (epoch ms) the level holds. */
  since: number;
  /** The conditions raised now; one stays raised until its signal is below the clear threshold. */
  raised: DegradationCondition[];
  /** The conditions point to a lower level: since when, and the highest level they pointed to meanwhile. */
  stepDown: { since: number; to: DegradationLevel } | null;
  /** The most workers seen per slice of the workers window: [slice start, count]. */
  workerPeaks: [number, number][];
  /** Postgres pings failed in a row, up to the last evaluation (absent in a state stored before it was kept). */
  postgresMisses?: number;
  signals: DegradationSignals;
  evaluatedAt: number;
}

type Thresholds = Pick<DegradationConfig, 'holdMs' | 'clearRatio' | 'oldestJobAgeMs' | 'redisMemoryRatio' | 'workersGoneRatio' | 'workersWindowMs'>;

// The workers window is kept as this many slices, so the stored state stays small.
const WORKER_WINDOW_SLICES = 10;

// Postgres counts as down after this many failed pings in a row. One ping late past its deadline is
// a process or a pool starved for a moment (a burst, a long statement), not an outage; shedding
// intake for it would refuse work Postgres could have taken. A real outage fails every ping.
const POSTGRES_DOWN_AFTER_MISSES = 2;

/** Failed pings in a row: reset by an answer, kept when the ping was not tried. */
function postgresMisses(previous: number | undefined, available: boolean | undefined): number {
  if (available === undefined) return previous ?? 0;
  return available ? 0 : (previous ?? 0) + 1;
}

/** A Schmitt trigger: raised at the threshold, cleared below threshold × clearRatio, unchanged between or when unread. */
function banded(value: number | null | undefined, threshold: number, clearRatio: number, wasRaised: boolean): boolean {
  if (value === null) return false;
  if (value === undefined) return wasRaised;
  if (value >= threshold) return true;
  return value < threshold * clearRatio ? false : wasRaised;
}

function observed(flag: boolean | undefined, wasRaised: boolean): boolean {
  return flag ?? wasRaised;
}

/** The window's peaks with `count` seen at `now`, slices past the window dropped. */
function updatePeaks(peaks: readonly [number, number][], count: number | undefined, now: number, windowMs: number): [number, number][] {
  const sliceMs = Math.max(1, Math.floor(windowMs / WORKER_WINDOW_SLICES));
  const kept = peaks.filter(([start]) => start > now - windowMs);
  if (count === undefined) return kept;
  const slice = now - (now % sliceMs);
  const current = kept.find(([start]) => start === slice);
  if (current === undefined) kept.push([slice, count]);
  else current[1] = Math.max(current[1], count);
  return kept;
}

const higher = (a: DegradationLevel, b: DegradationLevel): DegradationLevel => (levelRank(a) >= levelRank(b) ? a : b);

/**
 * The next state. A higher level is taken at once; a lower one only after the conditions pointed
 * below the current level for `holdMs` without a break, and then the highest level they pointed
 * to during that time. So after a signal clears the level is back within holdMs plus one
 * evaluation interval.
 */
export function nextDegradationState(previous: DegradationState | undefined, signals: DegradationSignals, thresholds: Thresholds, now: number): DegradationState {
  const was = new Set<DegradationCondition>(previous?.raised ?? []);
  const { clearRatio, redisMemoryRatio: memory } = thresholds;
  const workerPeaks = updatePeaks(previous?.workerPeaks ?? [], signals.workers?.established, now, thresholds.workersWindowMs);
  const peak = Math.max(0, ...workerPeaks.map(([, count]) => count));
  const misses = postgresMisses(previous?.postgresMisses, signals.postgresAvailable);
  const raisedNow: Record<DegradationCondition, boolean> = {
    breakerOpen: observed(signals.openBreakers === undefined ? undefined : signals.openBreakers.length > 0, was.has('breakerOpen')),
    oldestJobAge: banded(signals.oldestJobAgeMs, thresholds.oldestJobAgeMs, clearRatio, was.has('oldestJobAge')),
    redisMemoryLimited: banded(signals.redisMemoryRatio, memory.limited, clearRatio, was.has('redisMemoryLimited')),
    redisMemoryMinimal: banded(signals.redisMemoryRatio, memory.minimal, clearRatio, was.has('redisMemoryMinimal')),
    postgresDown: observed(signals.postgresAvailable === undefined ? undefined : misses >= POSTGRES_DOWN_AFTER_MISSES, was.has('postgresDown')),
    redisMemoryEmergency: banded(signals.redisMemoryRatio, memory.emergency, clearRatio, was.has('redisMemoryEmergency')),
    // No workers ever seen (an API-only deployment, a fresh fleet) is not "workers gone".
    workersGone: observed(signals.workers === undefined ? undefined : peak > 0 && signals.workers.alive < peak * thresholds.workersGoneRatio, was.has('workersGone')),
  };
  const raised = (Object.keys(CONDITIONS) as DegradationCondition[]).filter((condition) => raisedNow[condition]);
  const target = raised.reduce<DegradationLevel>((level, condition) => higher(level, CONDITIONS[condition]), 'NORMAL');
  const base = { raised, workerPeaks, postgresMisses: misses, signals, evaluatedAt: now };
  const current = previous?.level ?? 'NORMAL';
  if (levelRank(target) >= levelRank(current)) {
    return { ...base, level: target, since: target === current && previous ? previous.since : now, stepDown: null };
  }
  const stepDown = previous?.stepDown ? { since: previous.stepDown.since, to: higher(previous.stepDown.to, target) } : { since: now, to: target };
  if (now - stepDown.since >= thresholds.holdMs) return { ...base, level: stepDown.to, since: now, stepDown: null };
  return { ...base, level: current, since: previous?.since ?? now, stepDown };
}

/** What the API knows of a request when the level may shed it. */
export interface IntakeRequest {
  /** Many jobs in one request (the batch route). */
  batch: boolean;
  /** Of a kind whose intake can wait (KindIntake.lowPriority: on-demand backups). */
  lowPriority: boolean;
  /** Whether the tenant is of a priority tier; asked only at MINIMAL (it may read the limits cache). */
  priorityTier: () => Promise<boolean>;
}

/** What each level sheds at intake: undefined to go on, or why the request is refused. */
export async function intakeRefusal(level: DegradationLevel, request: IntakeRequest): Promise<string | undefined> {
  switch (level) {
    case 'NORMAL':
    case 'DEGRADED':
      return undefined;
    case 'LIMITED':
      return request.batch || request.lowPriority ? 'batches and low-priority jobs (on-demand backups) are refused' : undefined;
    case 'MINIMAL':
      if (request.batch || request.lowPriority) return 'only single jobs of the priority tiers are accepted';
      return (await request.priorityTier()) ? undefined : 'only single jobs of the priority tiers are accepted';
    case 'EMERGENCY':
      return 'no jobs are accepted';
    default: {
      const unknown: never = level;
      throw new Error(`unknown degradation level ${String(unknown)}`);
    }
  }
}

/** The factor on every tenant's request limits: `factor` from LIMITED up, 1 below. */
export function requestLimitFactor(level: DegradationLevel, factor: number): number {
  return levelRank(level) >= levelRank('LIMITED') ? factor : 1;
}

/**
 * Whether workers take new jobs. EMERGENCY drains. MINIMAL runs only jobs that can finish: with
 * Postgres down none can (every kind records its outcome there), so workers stop taking jobs;
 * with Redis memory short they go on, as each finished job frees memory. Active jobs always finish.
 */
export function mayTakeJobs(level: DegradationLevel, raised: readonly DegradationCondition[]): boolean {
  if (level === 'EMERGENCY') return false;
  return !(level === 'MINIMAL' && raised.includes('postgresDown'));
}
