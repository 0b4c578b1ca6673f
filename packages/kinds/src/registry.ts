import { afipSync } from './afip-sync/index';
import { backup } from './backup/index';
import { calendarSync } from './calendar-sync/index';
import type { AnyJobKind } from './define';

/**
 * Every job kind the fleet runs. The API's routes and OpenAPI, the worker's processors, the
 * sync-status kinds and the standalone wiring are derived from this list: a new kind is its module
 * plus one line here.
 */
export const JOB_KINDS = [calendarSync, afipSync, backup] as const satisfies readonly AnyJobKind[];

export type QueueName = (typeof JOB_KINDS)[number]['name'];

/** The queue of each registered kind, for `createQueues`. */
export const QUEUE_NAMES: readonly QueueName[] = JOB_KINDS.map((kind) => kind.name);
