import { startEntryPoint, type RunningProcess } from './processes';
import type { TestSystem } from './system';

/** Worker settings of the AFIP fleet tests: a dead worker's jobs and numbering lock come back within about two seconds. */
export const AFIP_FLEET_ENV = {
  QUEUES: 'afip-sync',
  AFIP_SYNC_LOCK_DURATION_MS: '2000',
  AFIP_SYNC_STALLED_INTERVAL_MS: '1000',
  AFIP_LOCK_TTL_MS: '2000',
  AFIP_LOCK_WAIT_MS: '200',
};

/** POST /v1/jobs/afip-sync with the system's key. */
export function postInvoice(system: TestSystem, body: unknown) {
  return system.api.inject({
    method: 'POST',
    url: '/v1/jobs/afip-sync',
    headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
}

/** A real worker process joining `system`, remembered in `workers` so the test can stop them all. */
export function startWorkerProcess(system: TestSystem, workers: RunningProcess[]): RunningProcess {
  const worker = startEntryPoint('apps/worker/src/main.ts', system.childEnv);
  workers.push(worker);
  return worker;
}
