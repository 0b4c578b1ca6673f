/**
 * Run as a child process: records every module Node resolves, imports the module graph named on
 * the command line (`api` or `kind:<name>`), and prints the connector libraries that got loaded.
 */
import { registerHooks } from 'node:module';

const CONNECTOR_LIBRARIES = ['googleapis', 'soap', 'node-forge', '@aws-sdk/client-s3'];
const resolved = new Set<string>();
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    resolved.add(result.url);
    return result;
  },
});

const loaded = () => CONNECTOR_LIBRARIES.filter((library) => [...resolved].some((url) => url.includes(`/node_modules/${library}/`)));
const target = process.argv[2] ?? 'api';
if (target === 'api') {
  await import('@jobfleet/api');
} else {
  const { JOB_KINDS } = await import('@jobfleet/kinds');
  const kind = JOB_KINDS.find((candidate) => candidate.name === target.replace(/^kind:/, ''));
  if (kind === undefined) throw new Error(`no kind ${target}`);
  await kind.worker();
}
process.stdout.write(`${JSON.stringify(loaded())}\n`);
