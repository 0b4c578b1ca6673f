import { channel } from 'node:diagnostics_channel';
import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import type { TracingConfig } from '@jobfleet/config';
import { createLogger } from './logger';
import { startTracing, type Tracing } from './tracing';

const off: TracingConfig = { tracesUrl: undefined, serviceName: undefined, sampler: 'parentbased_always_on', ratio: 1 };

/** A logger whose lines land in an array, parsed. */
function capturedLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: 'info', serviceName: 'test', destination }), lines };
}

/** Ends `count` root spans named root-<i> and answers how many the exporter got. */
function recordRoots(count: number, exporter: InMemorySpanExporter): number {
  const tracer = trace.getTracer('test');
  for (let i = 0; i < count; i += 1) tracer.startSpan(`root-${i}`).end();
  return exporter.getFinishedSpans().length;
}

describe('startTracing', () => {
  let tracing: Tracing | undefined;
  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
  });

  it('does nothing without an endpoint or an exporter: no provider, no ids on log lines', () => {
    expect(startTracing({ config: off, serviceName: 'test' })).toBeUndefined();
    const { logger, lines } = capturedLogger();
    trace.getTracer('test').startActiveSpan('not recorded', (span) => {
      logger.info('inside');
      span.end();
    });
    expect(lines[0]).not.toHaveProperty('trace_id');
  });

  it('exports spans named after the service, and log lines inside a span carry its trace and span ids', () => {
    const exporter = new InMemorySpanExporter();
    tracing = startTracing({ config: off, serviceName: 'jobfleet-test', exporter });
    const { logger, lines } = capturedLogger();
    const ids = trace.getTracer('test').startActiveSpan('work', (span) => {
      logger.info({ jobId: 'j-1' }, 'inside');
      span.end();
      return span.spanContext();
    });
    logger.info('outside');

    const [span] = exporter.getFinishedSpans();
    expect(span).toMatchObject({ name: 'work', resource: { attributes: { 'service.name': 'jobfleet-test' } } });
    expect(lines[0]).toMatchObject({ jobId: 'j-1', trace_id: ids.traceId, span_id: ids.spanId });
    expect(lines[1]).not.toHaveProperty('trace_id');
  });

  it('records nothing with always_off', () => {
    const exporter = new InMemorySpanExporter();
    tracing = startTracing({ config: { ...off, sampler: 'always_off' }, serviceName: 'test', exporter });
    expect(recordRoots(200, exporter)).toBe(0);
  });

  it('keeps about one root in ten with parentbased_traceidratio 0.1', () => {
    const exporter = new InMemorySpanExporter();
    tracing = startTracing({ config: { ...off, sampler: 'parentbased_traceidratio', ratio: 0.1 }, serviceName: 'test', exporter });
    // Random trace ids: 2,000 roots keep 200 on average; 100..300 is more than six standard deviations wide.
    const kept = recordRoots(2000, exporter);
    expect(kept).toBeGreaterThan(100);
    expect(kept).toBeLessThan(300);
  });

  it('after shutdown no longer records, so a later start in the same process begins clean', async () => {
    const exporter = new InMemorySpanExporter();
    const first = startTracing({ config: off, serviceName: 'test', exporter });
    await first?.shutdown();
    expect(recordRoots(3, exporter)).toBe(0);
    const again = new InMemorySpanExporter();
    tracing = startTracing({ config: off, serviceName: 'test', exporter: again });
    expect(recordRoots(3, again)).toBe(3);
  });

  it('after shutdown leaves no instrumentation listening, so a restart does not instrument twice', async () => {
    // @fastify/otel instruments each Fastify app from this channel; a second listener left by an
    // earlier start decorated every later app twice ("decorator already added").
    const fastifyInitialization = channel('fastify.initialization');
    const first = startTracing({ config: off, serviceName: 'test', exporter: new InMemorySpanExporter() });
    expect(fastifyInitialization.hasSubscribers).toBe(true);
    await first?.shutdown();
    expect(fastifyInitialization.hasSubscribers).toBe(false);
    tracing = startTracing({ config: off, serviceName: 'test', exporter: new InMemorySpanExporter() });
    expect(fastifyInitialization.hasSubscribers).toBe(true);
  });
});
