import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { loadConfig, type Config } from '@jobfleet/config';
import { QUEUE_NAMES } from '@jobfleet/kinds';
import { createMetrics } from '@jobfleet/observability';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service, ServiceAccount, type IContainer, type IPodTemplateSpec } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { drainTimeMs, entryPointOf, SECRET_PLACEHOLDERS, workerQueueOf } from '../support/deployment';
import { REPO_ROOT } from '../support/processes';

/**
 * The manifests of infra/k8s as `kubectl kustomize` builds them (the machine's kubectl, or Debian's
 * kubernetes-client that .ci/run installs), checked against the Kubernetes and KEDA schemas and
 * against what the processes themselves need: each container's environment is fed to
 * packages/config's production checks, so ports, shutdown timeouts and queues come from there.
 */
const KUSTOMIZATIONS = ['infra/k8s/base', 'infra/k8s/overlays/production'];
// The README has operators create it with SECRET_PLACEHOLDERS' keys.
const SECRET_NAME = 'jobfleet-secrets';

// Every kind the manifests may hold; a Secret is deliberately not one of them.
const MODELS = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
} as const;
type Model = InstanceType<(typeof MODELS)[keyof typeof MODELS]>;

interface Build {
  objects: Model[];
  of<M extends (typeof MODELS)[keyof typeof MODELS]>(model: M): InstanceType<M>[];
}

function build(kustomization: string): Build {
  let output: string;
  try {
    output = execFileSync('kubectl', ['kustomize', join(REPO_ROOT, kustomization)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Error(`kubectl kustomize ${kustomization} failed (no kubectl? apt-get install kubernetes-client, as .ci/run does)`, { cause: error });
  }
  const objects = parseAllDocuments(output).map((document) => {
    const raw = document.toJS() as { apiVersion: string; kind: string };
    const model = MODELS[`${raw.apiVersion}/${raw.kind}` as keyof typeof MODELS] as (new (data: unknown) => Model) | undefined;
    if (model === undefined) throw new Error(`${kustomization}: no schema model for ${raw.apiVersion} ${raw.kind}`);
    const object = new model(raw);
    object.validate();
    return object;
  });
  return { objects, of: (model) => objects.filter((object): object is InstanceType<typeof model> => object instanceof model) };
}

interface Workload {
  name: string;
  template: IPodTemplateSpec;
}

const nameOf = (object: Model): string => object.metadata?.name ?? '(unnamed)';

const workloads = (manifests: Build): Workload[] => [
  ...manifests.of(Deployment).map((d) => ({ name: `Deployment ${nameOf(d)}`, template: d.spec!.template })),
  ...manifests.of(Job).map((j) => ({ name: `Job ${nameOf(j)}`, template: j.spec!.template })),
];

const containersOf = (workload: Workload): IContainer[] => [...(workload.template.spec?.initContainers ?? []), ...(workload.template.spec?.containers ?? [])];

/** The container's environment as the kubelet would set it, with the Secret's placeholders. */
function environmentOf(container: IContainer, manifests: Build): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) {
      const configMap = manifests.of(ConfigMap).find((c) => c.metadata?.name === source.configMapRef?.name);
      if (!configMap) throw new Error(`${container.name}: no ConfigMap ${String(source.configMapRef.name)}`);
      Object.assign(env, configMap.data);
    }
    if (source.secretRef) Object.assign(env, SECRET_PLACEHOLDERS);
  }
  for (const variable of container.env ?? []) {
    const secretKey = variable.valueFrom?.secretKeyRef?.key;
    env[variable.name] = secretKey === undefined ? (variable.value ?? '') : (SECRET_PLACEHOLDERS[secretKey] ?? 'placeholder');
  }
  return env;
}

function configOf(container: IContainer, manifests: Build): Config {
  return loadConfig(environmentOf(container, manifests));
}

const entryPoint = (container: IContainer) => entryPointOf([...(container.command ?? []), ...(container.args ?? [])]);

/** The port number a probe names, resolving a named container port. */
function probePort(container: IContainer, port: number | string | undefined): number | undefined {
  return typeof port === 'number' ? port : container.ports?.find((p) => p.name === port)?.containerPort;
}

const labelsMatch = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && Object.entries(selector).every(([key, value]) => labels?.[key] === value);

/** Metric names a PromQL expression reads: identifiers followed by a label matcher. */
const metricNamesIn = (query: string): string[] => [...query.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((match) => match[1]!);

describe.each(KUSTOMIZATIONS)('the manifests of %s', (kustomization) => {
  let manifests: Build;
  beforeAll(() => {
    manifests = build(kustomization);
  });

  it('builds objects that all validate against the Kubernetes and KEDA schemas', () => {
    expect(manifests.objects.length).toBeGreaterThan(0);
    expect(manifests.of(Deployment).map((d) => nameOf(d)).sort()).toEqual(['api', ...QUEUE_NAMES.map((q) => `worker-${q}`)].sort());
  });

  it('runs every container as non-root on a read-only root file system, without privileges, with requests and limits', () => {
    for (const workload of workloads(manifests)) {
      const pod = workload.template.spec!;
      expect({ workload: workload.name, seccomp: pod.securityContext?.seccompProfile?.type, token: pod.automountServiceAccountToken }).toEqual({
        workload: workload.name,
        seccomp: 'RuntimeDefault',
        token: false,
      });
      for (const container of containersOf(workload)) {
        const security = container.securityContext;
        expect({
          container: `${workload.name}/${container.name}`,
          runAsNonRoot: security?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot,
          runAsUser: (security?.runAsUser ?? pod.securityContext?.runAsUser ?? 0) > 0,
          readOnlyRootFilesystem: security?.readOnlyRootFilesystem,
          allowPrivilegeEscalation: security?.allowPrivilegeEscalation,
          privileged: security?.privileged ?? false,
          drop: security?.capabilities?.drop,
          add: security?.capabilities?.add ?? [],
          resources: Object.keys({ ...container.resources?.requests, ...container.resources?.limits }).sort(),
          requestsAndLimits: ['cpu', 'memory'].every((r) => r in (container.resources?.requests ?? {}) && r in (container.resources?.limits ?? {})),
        }).toEqual({
          container: `${workload.name}/${container.name}`,
          runAsNonRoot: true,
          runAsUser: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          privileged: false,
          drop: ['ALL'],
          add: [],
          resources: ['cpu', 'memory'],
          requestsAndLimits: true,
        });
        // The only writable places are emptyDir volumes.
        for (const mount of container.volumeMounts ?? []) {
          const volume = pod.volumes?.find((v) => v.name === mount.name);
          expect({ mount: mount.mountPath, emptyDir: volume?.emptyDir !== undefined }).toEqual({ mount: mount.mountPath, emptyDir: true });
        }
        expect(containersOf(workload).every((c) => c.volumeMounts?.some((m) => m.mountPath === '/tmp'))).toBe(true);
      }
    }
  });

  it('gives every process a configuration the production checks accept, with secrets only by reference to one Secret', () => {
    // No Secret object either: MODELS has none, so build() refuses one.
    for (const configMap of manifests.of(ConfigMap)) {
      expect(Object.keys(configMap.data ?? {}).filter((key) => key in SECRET_PLACEHOLDERS)).toEqual([]);
    }
    for (const workload of workloads(manifests)) {
      for (const container of containersOf(workload)) {
        const literal = (container.env ?? []).filter((variable) => variable.valueFrom === undefined).map((variable) => variable.name);
        expect(literal.filter((name) => name in SECRET_PLACEHOLDERS)).toEqual([]);
        const secretNames = [
          ...(container.envFrom ?? []).flatMap((source) => (source.secretRef ? [source.secretRef.name] : [])),
          ...(container.env ?? []).flatMap((variable) => (variable.valueFrom?.secretKeyRef ? [variable.valueFrom.secretKeyRef.name] : [])),
        ];
        expect(new Set(secretNames)).toEqual(new Set([SECRET_NAME]));
        expect(configOf(container, manifests).nodeEnv).toBe('production');
        entryPoint(container);
      }
    }
  });

  it('probes /health/live and /health/ready on the port each process serves them on', () => {
    for (const deployment of manifests.of(Deployment)) {
      for (const container of deployment.spec!.template.spec!.containers) {
        const config = configOf(container, manifests);
        const port = entryPoint(container) === 'api' ? config.api.port : config.worker.metricsPort;
        expect({
          container: `${nameOf(deployment)}/${container.name}`,
          live: [container.livenessProbe?.httpGet?.path, probePort(container, container.livenessProbe?.httpGet?.port)],
          ready: [container.readinessProbe?.httpGet?.path, probePort(container, container.readinessProbe?.httpGet?.port)],
        }).toEqual({ container: `${nameOf(deployment)}/${container.name}`, live: ['/health/live', port], ready: ['/health/ready', port] });
      }
    }
  });

  it('gives every process longer to stop than it drains, each worker one queue, and backups time for their longest run', () => {
    for (const deployment of manifests.of(Deployment)) {
      const container = deployment.spec!.template.spec!.containers[0]!;
      const graceMs = (deployment.spec!.template.spec!.terminationGracePeriodSeconds ?? 30) * 1000;
      const drainMs = drainTimeMs(environmentOf(container, manifests), entryPoint(container));
      expect({ deployment: nameOf(deployment), longerThanDrain: graceMs > drainMs }).toEqual({ deployment: nameOf(deployment), longerThanDrain: true });
      if (entryPoint(container) !== 'worker') continue;
      const config = configOf(container, manifests);
      expect(`worker-${workerQueueOf(config)}`).toBe(nameOf(deployment));
      // A backup's dump and its restore check each get BACKUP_TIMEOUT_SECONDS.
      if (workerQueueOf(config) === 'backup') expect(config.worker.shutdownTimeoutMs).toBeGreaterThanOrEqual(2 * config.backup.timeoutMs);
    }
  });

  it('covers every Deployment with a PodDisruptionBudget, the API with a CPU autoscaler, and every pod with a network policy that lets its ports in', () => {
    for (const deployment of manifests.of(Deployment)) {
      const labels = deployment.spec!.template.metadata?.labels;
      expect({ deployment: nameOf(deployment), budgets: manifests.of(PodDisruptionBudget).filter((b) => labelsMatch(b.spec?.selector?.matchLabels, labels)).length }).toEqual({
        deployment: nameOf(deployment),
        budgets: 1,
      });
      const policies = manifests.of(NetworkPolicy).filter((policy) => labelsMatch(policy.spec?.podSelector?.matchLabels, labels));
      expect(policies.length).toBeGreaterThan(0);
      // Every port a container serves (API, metrics, probes) is let in by some rule.
      const admitted = new Set(policies.flatMap((policy) => (policy.spec?.ingress ?? []).flatMap((rule) => (rule.ports ?? []).map((port) => port.port))));
      const served = deployment.spec!.template.spec!.containers.flatMap((container) => (container.ports ?? []).map((port) => port.containerPort));
      expect({ deployment: nameOf(deployment), closed: served.filter((port) => !admitted.has(port)) }).toEqual({ deployment: nameOf(deployment), closed: [] });
    }
    const autoscalers = manifests.of(HorizontalPodAutoscaler).map((hpa) => ({
      target: hpa.spec.scaleTargetRef.name,
      metrics: hpa.spec.metrics?.map((metric) => metric.resource?.name),
    }));
    expect(autoscalers).toEqual([{ target: 'api', metrics: ['cpu'] }]);
  });

  it('scales each worker queue with one ScaledObject on metrics the code exports; backups down to zero, the others never', () => {
    const exported = createMetrics().registry;
    const scaled = manifests.of(ScaledObject);
    expect(scaled.map((s) => s.spec.scaleTargetRef.name).sort()).toEqual(QUEUE_NAMES.map((q) => `worker-${q}`).sort());
    for (const scaledObject of scaled) {
      const queue = scaledObject.spec.scaleTargetRef.name.replace(/^worker-/, '');
      const minimum = scaledObject.spec.minReplicaCount ?? 0;
      if (queue === 'backup') expect(minimum).toBe(0);
      else expect(minimum).toBeGreaterThanOrEqual(1);
      const queries = scaledObject.spec.triggers.filter((t) => t.type === 'prometheus').map((t) => t.metadata.query ?? '');
      expect(queries.length).toBeGreaterThanOrEqual(2);
      for (const query of queries) {
        expect(query).toContain(`queue="${queue}"`);
        const names = metricNamesIn(query);
        expect(names.length).toBeGreaterThan(0);
        for (const name of names) expect({ query, name, exported: exported.getSingleMetric(name) !== undefined }).toEqual({ query, name, exported: true });
      }
    }
  });

  it('wakes the backup worker for every configured schedule, in its time zone', () => {
    const worker = manifests.of(Deployment).find((d) => d.metadata?.name === 'worker-backup')!;
    const config = configOf(worker.spec!.template.spec!.containers[0]!, manifests);
    const schedules = config.backup.definitions.flatMap((d) => [{ cron: d.cron, timezone: d.timezone }, ...(d.verify ? [{ cron: d.verify.cron, timezone: d.timezone }] : [])]);
    const cronTriggers = manifests
      .of(ScaledObject)
      .find((s) => s.spec.scaleTargetRef.name === 'worker-backup')!
      .spec.triggers.filter((t) => t.type === 'cron')
      .map((t) => ({ cron: t.metadata.start, timezone: t.metadata.timezone }));
    expect(cronTriggers).toEqual(schedules);
  });
});

it('the production overlay runs a released image, never a moving tag', () => {
  const images = workloads(build('infra/k8s/overlays/production')).flatMap((workload) => containersOf(workload).map((c) => c.image));
  expect(images.length).toBeGreaterThan(0);
  for (const image of images) expect(image).toMatch(/^[\w.-]+(\/[\w.-]+)+:\d+\.\d+\.\d+$/);
});
