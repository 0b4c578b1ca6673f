/**
 * OpenTelemetry traces: the Node SDK with the instrumentations of what a job touches (the HTTP
 * server and Fastify routes, outgoing HTTP through node:http and fetch, pg, ioredis).
 *
 * Instrumentations patch a module when it is loaded, so a process starts tracing before it loads
 * any of them: an entry point imports only config and this module statically, calls
 * `startTracing`, then imports the rest. This file must not import pg, ioredis, fastify or
 * anything that does.
 */
import { createRequire } from 'node:module';
import FastifyOtelInstrumentation from '@fastify/otel';
import { propagation, trace } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracesSampler, TracingConfig } from '@jobfleet/config';
import { BullMQOtel } from 'bullmq-otel';
import { withDeadline } from './readiness';

export interface Tracing {
  /**
   * BullMQ's `telemetry` option for Queues and Workers: a producer span per add, whose context
   * travels in the job (opts.telemetry.metadata), and a consumer span per run of the job, its child.
   */
  queueTelemetry: BullMQOtel;
  /** Ends tracing: exports the spans still buffered (waiting at most SHUTDOWN_FLUSH_MS), then stops; idempotent. */
  shutdown(): Promise<void>;
}

/** A collector that is down must not hold a process's exit for the exporter's 30 s timeout. */
const SHUTDOWN_FLUSH_MS = 5000;

export interface StartTracingOptions {
  config: TracingConfig;
  /** service.name when the config names none: `jobfleet-api`, `jobfleet-worker`. */
  serviceName: string;
  /**
   * Where spans go instead of OTLP (tests: an InMemorySpanExporter): tracing starts even though
   * the config names no endpoint, and each span is exported as it ends.
   */
  exporter?: SpanExporter;
}

/**
 * Starts the SDK and registers it as the process's global tracer provider, or does nothing (and
 * answers undefined) when tracing is off. Whether, where, what is sampled, under which name and
 * how it propagates are passed explicitly from `config`; the SDK's own tuning fallbacks for what
 * is not passed (OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT, OTEL_LOG_LEVEL) are left to it.
 */
export function startTracing(options: StartTracingOptions): Tracing | undefined {
  const { config } = options;
  const exporter = options.exporter ?? (config.tracesUrl === undefined ? undefined : new OTLPTraceExporter({ url: config.tracesUrl }));
  if (exporter === undefined) return undefined;
  const instrumentations = [
    new HttpInstrumentation({
      // Probes and scrapes every few seconds would drown the traces of jobs.
      ignoreIncomingRequestHook: (request) => isOpsPath(request.url),
    }),
    new UndiciInstrumentation(),
    new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: ({ url }) => isOpsPath(url) }),
    // No values: statements are parameterised, and parameters can hold tenant data.
    new PgInstrumentation({ enhancedDatabaseReporting: false }),
    // Commands with arguments would put job payloads and keys' values into spans: names only.
    new IORedisInstrumentation({ dbStatementSerializer: (command) => command }),
  ];
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName ?? options.serviceName }),
    // Resource detectors would read OTEL_RESOURCE_ATTRIBUTES and the host; the service name is ours.
    autoDetectResources: false,
    sampler: samplerFor(config.sampler, config.ratio),
    // W3C traceparent (and baggage), as producers send it and BullMQ stores it in each job; not OTEL_PROPAGATORS.
    textMapPropagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    // Batched in production (one export per few seconds, off the request path); a test's exporter sees each span at once.
    spanProcessors: [options.exporter ? new SimpleSpanProcessor({ exporter }) : new BatchSpanProcessor({ exporter })],
    // Only traces: metrics are Prometheus' (prom-client), logs are pino's on stdout.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations,
  });
  sdk.start();
  // The instrumentations hook require(); an ESM import of a CommonJS package does not pass there
  // (pg and fastify are caught anyway: pg's own files require each other, @fastify/otel listens on
  // a diagnostics channel). ioredis is not: required once here, it is patched in place, and every
  // later import (ours, BullMQ's) gets that same copy from the module cache.
  createRequire(import.meta.resolve('ioredis'))('ioredis');
  let stopped: Promise<void> | undefined;
  return {
    queueTelemetry: new BullMQOtel({ tracerName: 'jobfleet-queue' }),
    shutdown: () =>
      (stopped ??= withDeadline(sdk.shutdown(), SHUTDOWN_FLUSH_MS, 'flushing traces')
        .catch(() => undefined)
        .finally(() => {
          // Gone from the global API and from the hooks and diagnostics channels (the SDK's shutdown
          // leaves instrumentations enabled), so a later start in the same process registers
          // afresh instead of instrumenting twice (@fastify/otel would decorate every app twice).
          for (const instrumentation of instrumentations) instrumentation.disable();
          trace.disable();
          propagation.disable();
        })),
  };
}

/** The spec's sampler by name (OTEL_TRACES_SAMPLER), with its ratio (OTEL_TRACES_SAMPLER_ARG). */
function samplerFor(name: TracesSampler, ratio: number): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default: {
      const unknown: never = name;
      throw new Error(`unknown sampler ${String(unknown)}`);
    }
  }
}

const OPS_PATHS = ['/health/', '/metrics'];

function isOpsPath(url: string | undefined): boolean {
  return url !== undefined && OPS_PATHS.some((path) => url.startsWith(path));
}
