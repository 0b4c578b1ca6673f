import type { Config } from '@jobfleet/config';
import { createFleetControls, createFlagRollbackMonitor, jobKeyOf, openFlagClient, type FleetControls } from '@jobfleet/controls';
import { coerceError } from '@jobfleet/contracts';
import type { Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import type { RedisClient } from '@jobfleet/queue';
import type { Client } from '@openfeature/server-sdk';
import type { Worker } from 'bullmq';

interface FleetControlsRuntime {
  controls: FleetControls;
  /** The OpenFeature client the kinds evaluate their flags with. */
  flags: Client;
  /** Pauses and resumes `worker` with its kind's switch, and feeds its outcomes to the flag rollback. */
  watch(worker: Worker): void;
  /** Applies the pause of every watched worker again: `heldBackBy` changed. */
  reapply(): void;
  close(): Promise<void>;
}

/**
 * The worker side of kill switches and flags: a kind whose processing is paused has its worker
 * paused here (no fetch at all; a tenant's pause is the attempt gate's), and every attempt that
 * was served a rollout variant counts towards that flag's automatic rollback.
 */
export async function startFleetControls(deps: {
  config: Config;
  database: Database;
  redis: RedisClient;
  subscriber: RedisClient;
  logger: Logger;
  metrics: Metrics;
  /** Another reason to take no jobs at all (the degradation level), or undefined. */
  heldBackBy: () => string | undefined;
}): Promise<FleetControlsRuntime> {
  const { config, database, redis, logger, metrics } = deps;
  const controls = createFleetControls({ db: database.db, redis, subscriber: deps.subscriber, prefix: config.redis.prefix, pollMs: config.controls.pollMs, logger });
  const rollback = createFlagRollbackMonitor({ db: database.db, redis, prefix: config.redis.prefix, controls, settings: config.controls.rollback, metrics, logger });
  const flagClient = await openFlagClient(controls, [rollback.hook]);
  const watched: Worker[] = [];

  /** The one place a worker is paused or resumed: paused while its kind's switch or `heldBackBy` says so. */
  function applyPause(worker: Worker): void {
    const switched = controls.current().processingPaused(worker.name, undefined);
    const heldBack = deps.heldBackBy();
    const paused = switched ?? (heldBack === undefined ? undefined : { reason: heldBack });
    if (paused !== undefined && !worker.isPaused()) {
      logger.warn({ queue: worker.name, reason: paused.reason }, 'processing paused: taking no jobs of this kind');
      // Active jobs finish meanwhile; waiting for them here would hold up the other workers' switches.
      void worker.pause(true);
    } else if (paused === undefined && worker.isPaused()) {
      logger.info({ queue: worker.name }, 'processing resumed');
      void worker.resume();
    }
  }
  const reapply = () => watched.forEach(applyPause);
  controls.onChange(reapply);
  // The first read comes before the workers exist: a kind paused at boot starts paused.
  await controls.start();

  const record = (queue: string, jobId: string | undefined, outcome: 'completed' | 'failed') =>
    rollback.recordOutcome(jobKeyOf(queue, jobId), outcome).catch((error: unknown) =>
      logger.warn({ err: coerceError(error), queue, jobId }, 'could not count the job outcome for feature flag rollback'),
    );

  return {
    controls,
    flags: flagClient.client,
    watch(worker) {
      watched.push(worker);
      applyPause(worker);
      worker.on('completed', (job) => void record(worker.name, job.id, 'completed'));
      worker.on('failed', (job) => void (job && record(worker.name, job.id, 'failed')));
    },
    reapply,
    async close() {
      await flagClient.close();
      await controls.close();
    },
  };
}
