import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '@jobfleet/config';
import { parse } from 'yaml';
import { drainTimeMs, entryPointOf, SECRET_PLACEHOLDERS } from '../support/deployment';
import { REPO_ROOT } from '../support/processes';

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: (string | { source: string; target: string })[];
  ports?: unknown[];
  stop_grace_period?: string;
}

interface CollectorConfig {
  receivers: { otlp: { protocols: Record<'grpc' | 'http', { endpoint: string }> } };
  exporters: Record<string, { endpoint: string }>;
  service: { pipelines: { traces: { receivers: string[]; exporters: string[] } } };
}

/** docker-compose.yml as `docker-compose config` resolves it (Debian's docker-compose; .ci/run installs it). */
function resolvedCompose(): Record<string, ComposeService> {
  const env = { PATH: process.env.PATH ?? '', POSTGRES_PASSWORD: 'placeholder', ADMIN_PASSWORD: SECRET_PLACEHOLDERS.ADMIN_PASSWORD!, SECRETS_KEYS: SECRET_PLACEHOLDERS.SECRETS_KEYS! };
  let output: string;
  try {
    output = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: REPO_ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Error('docker-compose config failed (no docker-compose? apt-get install docker-compose, as .ci/run does)', { cause: error });
  }
  return (parse(output) as { services: Record<string, ComposeService> }).services;
}

/** Compose durations as `docker-compose config` prints them: `35s`, `1m30s`. */
function durationMs(duration: string | undefined): number {
  const match = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(duration ?? '10s');
  if (!match) throw new Error(`unreadable duration ${String(duration)}`);
  return (Number(match[1] ?? 0) * 60 + Number(match[2] ?? 0)) * 1000;
}

const hostPort = (endpoint: string) => {
  const { hostname, port } = new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`);
  return { host: hostname, port: Number(port) };
};

describe('docker-compose.yml', () => {
  let services: Record<string, ComposeService>;
  let jobfleet: [string, ComposeService & { command: string[]; environment: Record<string, string> }][];
  beforeAll(() => {
    services = resolvedCompose();
    jobfleet = Object.entries(services).flatMap(([name, service]) =>
      service.command?.some((arg) => arg.startsWith('dist/')) ? [[name, { ...service, command: service.command, environment: service.environment ?? {} }] as const] : [],
    );
  });

  it('runs api, migrate and every worker with a configuration the production checks accept', () => {
    expect(jobfleet.map(([, service]) => entryPointOf(service.command)).sort()).toEqual(['api', 'migrate', 'worker', 'worker', 'worker']);
    for (const [, service] of jobfleet) expect(loadConfig(service.environment).nodeEnv).toBe('production');
  });

  it('gives every long-running process longer to stop than it drains', () => {
    for (const [name, service] of jobfleet) {
      const entryPoint = entryPointOf(service.command);
      if (entryPoint === 'migrate') continue;
      expect({ name, longerThanDrain: durationMs(service.stop_grace_period) > drainTimeMs(service.environment, entryPoint) }).toEqual({ name, longerThanDrain: true });
    }
  });

  it('sends every process its traces through the collector, which exports them to Jaeger over OTLP', () => {
    const collectorFile = join(REPO_ROOT, 'infra/otel/collector.yaml');
    const [collectorName] = Object.entries(services).find(([, s]) => s.volumes?.some((v) => (typeof v === 'string' ? v : v.source).startsWith(collectorFile))) ?? [];
    const collector = parse(readFileSync(collectorFile, 'utf8')) as CollectorConfig;
    const receiverPorts = Object.values(collector.receivers.otlp.protocols).map((protocol) => hostPort(protocol.endpoint).port);
    const names = new Set<string>();
    for (const [name, service] of jobfleet) {
      const endpoint = hostPort(service.environment.OTEL_EXPORTER_OTLP_ENDPOINT ?? '');
      expect({ name, host: endpoint.host, received: receiverPorts.includes(endpoint.port) }).toEqual({ name, host: collectorName, received: true });
      names.add(service.environment.OTEL_SERVICE_NAME ?? '');
    }
    // Each process shows under its own name in Jaeger.
    expect(names.size).toBe(jobfleet.length);

    expect(collector.service.pipelines.traces.receivers).toEqual(['otlp']);
    for (const exporter of collector.service.pipelines.traces.exporters) {
      expect(exporter).toMatch(/^otlp(\/|$)/);
      const target = hostPort(collector.exporters[exporter]!.endpoint);
      const jaeger = services[target.host];
      expect({ image: jaeger?.image?.split(':')[0], otlp: jaeger?.environment?.COLLECTOR_OTLP_ENABLED, port: target.port }).toEqual({
        image: 'jaegertracing/all-in-one',
        otlp: 'true',
        port: 4317,
      });
    }
  });
});
