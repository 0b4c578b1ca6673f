import { loadConfigOrExit } from '@jobfleet/config';
import { startTracing } from '@jobfleet/observability/tracing';

// `npm start`. Tracing starts before anything it instruments (fastify, pg, ioredis, node:http,
// fetch) is loaded: the process itself is imported only then.
const loaded = loadConfigOrExit();
const tracing = startTracing({ config: loaded.tracing, serviceName: loaded.serviceName });
const { runAllInOne } = await import('./all-in-one');
await runAllInOne(loaded, tracing);
