import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TaskCancelledError,
  TimeoutStrategy,
  bulkhead,
  circuitBreaker,
  handleWhen,
  noop,
  retry,
  timeout,
  wrap,
  type IPolicy,
} from 'cockatiel';
import { DEPENDENCIES, type Dependency, type DependencyPolicySettings } from '@jobfleet/config';
import { CircuitOpenError, DependencyUnavailableError, JobfleetError, WaitError } from '@jobfleet/contracts';
import type { Logger, Metrics } from '@jobfleet/observability';


export type BreakerState = 'closed' | 'half-open' | 'open';
/** `circuit_breaker_state` values. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = { closed: 0, 'half-open': 1, open: 2 };

export interface CallOptions {
  /** Safe to repeat (reads, keyed writes): only such calls are retried inside the policy. */
  idempotent?: boolean;
  /** Overrides the dependency's timeout for this operation (0 = none). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface DependencyGuard {
  readonly dependency: Dependency;
  /**
   * Runs `fn` under the dependency's policy. Throws CircuitOpenError without calling when the
   * breaker is open, DependencyUnavailableError on a timeout or a full bulkhead, else what `fn` threw.
   */
  call<T>(operation: string, fn: (signal: AbortSignal) => Promise<T>, options?: CallOptions): Promise<T>;
  state(): BreakerState;
  /** Time until the open breaker lets a trial call through; 0 unless open. */
  retryAfterMs(): number;
}

export interface GuardEvents {
  /** Every breaker transition, e.g. to publish the fleet's view in Redis. */
  onStateChange?(dependency: Dependency, state: BreakerState, retryAfterMs: number): void;
  /**
   * Records one dependency failure fleet-wide and returns how many the fleet saw within the last
   * `windowMs` (see `createFleetFailureCounter`). Breakers are per process: without this, a job
   * that every worker in turn tries (the head of a serialized AFIP series) would spend an attempt
   * per worker per failure before any one breaker opened.
   */
  countFleetFailure?(dependency: Dependency, windowMs: number): Promise<number>;
  /**
   * Narrows what counts as a failure of a dependency beyond `isDependencyFailure`, e.g. for
   * Postgres only an unavailable server (see classifyPostgresError), never a refused statement.
   */
  isFailure?: Partial<Record<Dependency, (error: unknown) => boolean>>;
}

/** What opens a breaker: the dependency failing, never the request being refused (4xx, validation). */
export function isDependencyFailure(error: unknown): boolean {
  if (error instanceof WaitError) return false;
  if (error instanceof DependencyUnavailableError) return true;
  if (error instanceof TaskCancelledError) return true;
  // Our clients map their failures; anything unmapped that is not ours is a transport surprise.
  return !(error instanceof JobfleetError);
}

function stateOf(state: CircuitState): BreakerState {
  if (state === CircuitState.Closed) return 'closed';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'open';
}

/** A guard for one dependency: timeout, retry (idempotent calls only), circuit breaker, bulkhead. */
export function createDependencyGuard(
  dependency: Dependency,
  settings: DependencyPolicySettings,
  deps: { metrics: Metrics; logger: Logger } & GuardEvents,
): DependencyGuard {
  const { metrics, logger } = deps;
  const narrowed = deps.isFailure?.[dependency];
  const isFailure = narrowed === undefined ? isDependencyFailure : (error: unknown) => isDependencyFailure(error) && narrowed(error);
  const breaker = circuitBreaker(handleWhen(isFailure), {
    halfOpenAfter: settings.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(settings.maxFailures),
  });
  let openedAt = 0;
  const retryAfterMs = () => (breaker.state === CircuitState.Open ? Math.max(0, openedAt + settings.halfOpenAfterMs - Date.now()) : 0);
  metrics.breakerState.set({ dependency }, BREAKER_STATE_VALUE.closed);
  breaker.onStateChange((circuitState) => {
    const state = stateOf(circuitState);
    if (state === 'open') openedAt = Date.now();
    metrics.breakerState.set({ dependency }, BREAKER_STATE_VALUE[state]);
    metrics.breakerTransitions.inc({ dependency, to: state });
    const log = state === 'closed' ? logger.info.bind(logger) : logger.warn.bind(logger);
    log({ dependency, breaker: state, retryAfterMs: retryAfterMs() }, `circuit breaker of ${dependency} is now ${state}`);
    deps.onStateChange?.(dependency, state, retryAfterMs());
  });
  const limit = settings.maxConcurrent > 0 ? bulkhead(settings.maxConcurrent, settings.maxConcurrent * 10) : noop;
  const retrying = retry(handleWhen((error) => error instanceof DependencyUnavailableError), {
    maxAttempts: settings.retries,
    backoff: new ExponentialBackoff({ initialDelay: settings.retryBaseMs, maxDelay: settings.retryBaseMs * 16 }),
  });

  // The wrapped policies of each (idempotent, timeout) pair, built once: thousands of calls a second share them.
  const policies = new Map<string, IPolicy>();
  function policyFor(idempotent: boolean, timeoutMs: number): IPolicy {
    const id = `${idempotent ? 'idempotent' : 'once'}:${timeoutMs}`;
    let policy = policies.get(id);
    if (policy === undefined) {
      // Not aborting the signal of a call that returned: nothing runs on after it, and an abort
      // builds a DOMException (with its stack) per call.
      const tries = timeoutMs > 0 ? timeout(timeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false }) : noop;
      policy = idempotent ? wrap(limit, breaker, retrying, tries) : wrap(limit, breaker, tries);
      policies.set(id, policy);
    }
    return policy;
  }

  return {
    dependency,
    state: () => stateOf(breaker.state),
    retryAfterMs,
    async call<T>(operation: string, fn: (signal: AbortSignal) => Promise<T>, options: CallOptions = {}): Promise<T> {
      // Outermost first: the bulkhead admits, the breaker decides, retries happen inside it (each
      // failed try counts towards opening), and the timeout bounds each try.
      const policy = policyFor(options.idempotent === true, options.timeoutMs ?? settings.timeoutMs);
      const started = performance.now();
      let result = 'success';
      try {
        return await policy.execute(({ signal }) => fn(signal), options.signal);
      } catch (error) {
        result = error instanceof BrokenCircuitError ? 'rejected' : error instanceof TaskCancelledError ? 'timeout' : 'failure';
        const translated = translate(error, dependency, operation, retryAfterMs);
        if (translated instanceof CircuitOpenError || !isFailure(translated)) throw translated;
        // The failure that opened the breaker, a failed half-open trial, or a failure once the
        // fleet as a whole has seen maxFailures of them tells about the dependency, not the job:
        // it waits like the calls an open breaker refuses, without spending an attempt.
        if (breaker.state === CircuitState.Open) throw new CircuitOpenError(dependency, retryAfterMs(), { cause: translated });
        const fleetFailures = await (deps.countFleetFailure?.(dependency, settings.halfOpenAfterMs) ?? Promise.resolve(0)).catch(() => 0);
        if (fleetFailures >= settings.maxFailures) throw new CircuitOpenError(dependency, settings.halfOpenAfterMs, { cause: translated });
        throw translated;
      } finally {
        metrics.dependencyCallDuration.observe({ dependency, operation, result }, (performance.now() - started) / 1000);
      }
    },
  };
}

function translate(error: unknown, dependency: Dependency, operation: string, retryAfterMs: () => number): unknown {
  if (error instanceof BrokenCircuitError) return new CircuitOpenError(dependency, retryAfterMs(), { cause: error });
  if (error instanceof TaskCancelledError) {
    return new DependencyUnavailableError(dependency, `${operation} timed out`, { cause: error, details: { operation } });
  }
  if (error instanceof BulkheadRejectedError) {
    return new DependencyUnavailableError(dependency, `${operation}: too many calls in flight from this process`, { cause: error });
  }
  return error;
}

/** One guard per dependency, sharing the process's metrics, logger and transition listener. */
export function createDependencyGuards(
  settings: Readonly<Record<Dependency, DependencyPolicySettings>>,
  deps: { metrics: Metrics; logger: Logger } & GuardEvents,
): Readonly<Record<Dependency, DependencyGuard>> {
  const entries = DEPENDENCIES.map((dependency) => [dependency, createDependencyGuard(dependency, settings[dependency], deps)] as const);
  return Object.fromEntries(entries) as Record<Dependency, DependencyGuard>;
}
