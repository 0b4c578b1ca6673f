import type { Config } from '@jobfleet/config';
import { flagDefinition, flagDefinitionSchema, flagKeySchema, switchChange, switchChangeSchema, switchTargetSchema, type FleetControls } from '@jobfleet/controls';
import { featureFlagRepository, fleetSwitchRepository, tenantExists, type Db, type FeatureFlag, type FleetSwitch } from '@jobfleet/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { callPostgres as pg } from '../dependencies';
import { fleetControlDocs } from '../openapi';
import type { Auth } from '../plugins/auth';
import { HttpProblem, parseOrThrow } from '../problem';

export interface FleetControlRoutesDeps {
  db: Db;
  auth: Auth;
  controls: FleetControls;
  /** The registry's kind names: a kind switch names one of them. */
  kindNames: readonly string[];
}

/**
 * The 503 of a job whose kind or tenant has intake switched off, from the process's cached switches
 * (no Redis or Postgres call): nothing of the request is claimed, recorded or enqueued.
 */
export function intakeRefusal(controls: FleetControls, config: Config, kind: string, tenantId: string): HttpProblem | undefined {
  const hit = controls.current().intakeClosed(kind, tenantId);
  if (hit === undefined) return undefined;
  const what = hit.scope === 'kind' ? `${kind} jobs` : `the jobs of tenant ${tenantId}`;
  return new HttpProblem(503, `Intake of ${what} is switched off${hit.reason ? `: ${hit.reason}` : ''}; retry later`, {
    type: '/problems/intake-disabled',
    headers: { 'retry-after': String(config.controls.intakeOffRetryAfterSeconds) },
    extensions: { switch: { scope: hit.scope, subject: hit.subject }, reason: hit.reason },
  });
}

const switchView = (entry: FleetSwitch) => ({ ...entry, updatedAt: entry.updatedAt.toISOString() });
const flagView = (flag: FeatureFlag) => ({ ...flag, updatedAt: flag.updatedAt.toISOString() });

const kindParams = z.strictObject({ kind: z.string() });
const tenantParams = z.strictObject({ tenantId: z.string() });
const flagParams = z.strictObject({ key: flagKeySchema });

/**
 * `/v1/admin/switches` and `/v1/admin/flags`: kill switches and feature flags, fleet operators only
 * (`fleet:admin` or the operator's Basic credentials). A change is audited with its actor, stored,
 * and announced on Redis: every process applies it within a second, or by its poll
 * (FLEET_CONTROLS_POLL_MS) if the message is lost.
 */
export function registerFleetControlRoutes(app: FastifyInstance, { db, auth, controls, kindNames }: FleetControlRoutesDeps): void {
  const targetSchema = switchTargetSchema(kindNames);
  const onRequest = auth.operatorOnly;

  async function setSwitch(request: FastifyRequest, scope: 'kind' | 'tenant', subject: unknown) {
    const by = auth.operator(request);
    const target = parseOrThrow(targetSchema, { scope, subject }, 'The path');
    const change = parseOrThrow(switchChangeSchema, request.body, 'The request body', 422);
    if (scope === 'tenant' && !(await pg(() => tenantExists(db, target.subject)))) throw new HttpProblem(404, `No tenant "${target.subject}"`);
    const stored = await pg(() => fleetSwitchRepository.set(db, switchChange(target, change), by));
    await controls.announce();
    return switchView(stored);
  }

  app.get('/v1/admin/switches', { onRequest, schema: fleetControlDocs.listSwitches }, async () => ({
    items: (await pg(() => fleetSwitchRepository.list(db))).map(switchView),
  }));
  app.put('/v1/admin/switches/kinds/:kind', { onRequest, schema: fleetControlDocs.setKindSwitch(switchChangeSchema) }, (request) =>
    setSwitch(request, 'kind', parseOrThrow(kindParams, request.params, 'The path').kind),
  );
  app.put('/v1/admin/switches/tenants/:tenantId', { onRequest, schema: fleetControlDocs.setTenantSwitch(switchChangeSchema) }, (request) =>
    setSwitch(request, 'tenant', parseOrThrow(tenantParams, request.params, 'The path').tenantId),
  );

  app.get('/v1/admin/flags', { onRequest, schema: fleetControlDocs.listFlags }, async () => ({
    items: (await pg(() => featureFlagRepository.list(db))).map(flagView),
  }));
  app.get('/v1/admin/flags/:key', { onRequest, schema: fleetControlDocs.getFlag }, async (request) => {
    const { key } = parseOrThrow(flagParams, request.params, 'The path');
    const flag = await pg(() => featureFlagRepository.find(db, key));
    if (flag === undefined) throw new HttpProblem(404, `No feature flag "${key}"`);
    return flagView(flag);
  });
  app.put('/v1/admin/flags/:key', { onRequest, schema: fleetControlDocs.putFlag(flagDefinitionSchema) }, async (request) => {
    const by = auth.operator(request);
    const { key } = parseOrThrow(flagParams, request.params, 'The path');
    const definition = flagDefinition(key, parseOrThrow(flagDefinitionSchema, request.body, 'The request body', 422));
    const stored = await pg(() => featureFlagRepository.put(db, definition, by));
    await controls.announce();
    return flagView(stored);
  });
}
