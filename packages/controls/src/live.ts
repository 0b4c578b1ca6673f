import { coerceError } from '@jobfleet/contracts';
import { featureFlagRepository, fleetSwitchRepository, type Db } from '@jobfleet/db';
import type { Logger } from '@jobfleet/observability';
import type { RedisClient } from '@jobfleet/queue';
import { EMPTY_SNAPSHOT, snapshotOf, type FleetControlsSnapshot } from './snapshot';

export interface FleetControlsOptions {
  db: Db;
  /** Where changes are announced (PUBLISH); a connection shared with other uses. */
  redis: RedisClient;
  /**
   * A connection of its own for SUBSCRIBE (a subscribed connection takes no other command); the
   * controls own it and disconnect it on close.
   */
  subscriber: RedisClient;
  /** QUEUE_PREFIX: the channel is `<prefix>:fleet-controls`. */
  prefix: string;
  /** FLEET_CONTROLS_POLL_MS: the re-read that catches a change whose message was lost. */
  pollMs: number;
  logger: Logger;
}

export interface FleetControls {
  /** The last snapshot read; empty until `start` resolves. */
  current(): FleetControlsSnapshot;
  /** Reads the tables once, subscribes and starts polling. Resolves after the first read (or its failure, logged: polling goes on) and the subscription (2 s at most: Redis may be down). */
  start(): Promise<void>;
  /** Reads the tables now; listeners hear of the new snapshot. */
  refresh(): Promise<FleetControlsSnapshot>;
  /** Tells every process (this one included) that the tables changed. Never throws: polling covers a lost message. */
  announce(): Promise<void>;
  /** Called with each new snapshot, after it replaced the last. */
  onChange(listener: (snapshot: FleetControlsSnapshot) => void): void;
  close(): Promise<void>;
}

// How long a start waits for its subscription before it goes on without (Redis down).
const SUBSCRIBE_WAIT_MS = 2000;

export const fleetControlsChannel = (prefix: string) => `${prefix}:fleet-controls`;

/**
 * The kill switches and feature flags, cached in this process: read from Postgres at start, again
 * on each message on the Redis channel (a change made anywhere in the fleet), and every `pollMs`
 * in case a message was lost (a subscriber reconnecting, a publisher without Redis).
 */
export function createFleetControls(options: FleetControlsOptions): FleetControls {
  const { db, redis, subscriber, logger, pollMs } = options;
  const channel = fleetControlsChannel(options.prefix);
  const listeners: ((snapshot: FleetControlsSnapshot) => void)[] = [];
  let snapshot = EMPTY_SNAPSHOT;
  let poller: NodeJS.Timeout | undefined;
  // One read at a time; a request during a read runs one more read after it, which sees the change.
  let reading: Promise<FleetControlsSnapshot> | undefined;
  let again = false;
  let closed = false;

  async function read(): Promise<FleetControlsSnapshot> {
    const [switches, flags] = await Promise.all([fleetSwitchRepository.list(db), featureFlagRepository.list(db)]);
    snapshot = snapshotOf(switches, flags);
    for (const listener of listeners) listener(snapshot);
    return snapshot;
  }

  function refresh(): Promise<FleetControlsSnapshot> {
    if (reading !== undefined) {
      again = true;
      return reading;
    }
    reading = read().finally(() => {
      reading = undefined;
      if (again && !closed) {
        again = false;
        void refreshQuietly();
      }
    });
    return reading;
  }

  const refreshQuietly = () =>
    refresh().catch((error: unknown) => logger.warn({ err: coerceError(error) }, 'could not read the kill switches and flags; the last ones stay in force'));

  subscriber.on('message', (from: string) => {
    if (from === channel && !closed) void refreshQuietly();
  });

  return {
    current: () => snapshot,
    async start() {
      await refreshQuietly();
      const subscribed = subscriber.subscribe(channel).catch((error: unknown) =>
        logger.warn({ err: coerceError(error), channel }, 'could not subscribe to fleet control changes; polling only'),
      );
      // Subscribed before serving, normally; with Redis down the process starts anyway, the
      // subscription follows when Redis is back (ioredis subscribes again after every reconnect),
      // and polling carries the changes meanwhile.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([subscribed, new Promise((resolve) => (timer = setTimeout(resolve, SUBSCRIBE_WAIT_MS)))]);
      clearTimeout(timer);
      poller = setInterval(() => void refreshQuietly(), pollMs);
      poller.unref();
    },
    refresh,
    async announce() {
      await redis.publish(channel, String(Date.now())).catch((error: unknown) =>
        logger.warn({ err: coerceError(error), channel }, `could not announce a fleet control change; processes see it within ${pollMs} ms`),
      );
      await refreshQuietly();
    },
    onChange: (listener) => void listeners.push(listener),
    async close() {
      closed = true;
      clearInterval(poller);
      await reading?.catch(() => undefined);
      subscriber.disconnect();
    },
  };
}
