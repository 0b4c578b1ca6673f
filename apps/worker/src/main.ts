import { loadConfigOrExit } from '@jobfleet/config';
import { startTracing } from '@jobfleet/observability/tracing';

// Entry point of a worker container. Tracing starts before anything it instruments (pg, ioredis,
// node:http, fetch) is loaded: the worker itself is imported only then.
const config = loadConfigOrExit({ role: 'service' });
const tracing = startTracing({ config: config.tracing, serviceName: `${config.serviceName}-worker` });
const { runWorkerContainer } = await import('./container');
await runWorkerContainer(config, tracing);
