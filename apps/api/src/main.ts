import { loadConfigOrExit } from '@jobfleet/config';
import { startTracing } from '@jobfleet/observability/tracing';

// Entry point of an API replica. Tracing starts before anything it instruments (fastify, pg,
// ioredis, node:http) is loaded: the replica itself is imported only then.
const config = loadConfigOrExit({ role: 'service' });
const tracing = startTracing({ config: config.tracing, serviceName: `${config.serviceName}-api` });
const { runApiReplica } = await import('./replica');
await runApiReplica(config, tracing);
