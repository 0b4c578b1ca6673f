import { fileURLToPath } from 'node:url';
import { createClientAsync, type Client } from 'soap';

/** One SOAP service as the clients use it: its WSDL shipped in this package, its address set per environment. */
export interface SoapService {
  /** Calls `operation` and resolves with the parsed response element's content (unknown: parse it). */
  call(operation: string, args: Record<string, unknown>): Promise<unknown>;
}

// A literal URL of the folder, so the production build (scripts/build.ts) can copy it beside the bundle.
const WSDL_DIR = new URL('./wsdl/', import.meta.url);

/**
 * A soap client over the WSDL file `src/wsdl/<wsdlFile>`, posting to `endpoint`. The WSDL is read
 * once, on the first call (a broken one fails that call, not the process start). Every request is
 * bounded by `timeoutMs`, connection and response body included.
 */
export function createSoapService(wsdlFile: string, endpoint: string, timeoutMs: number): SoapService {
  const wsdl = fileURLToPath(new URL(wsdlFile, WSDL_DIR));
  let client: Promise<Client> | undefined;

  return {
    async call(operation, args) {
      client ??= createClientAsync(wsdl, { endpoint });
      const ready = await client.catch((error: unknown) => {
        client = undefined; // let the next call try again
        throw error;
      });
      const method: unknown = ready[`${operation}Async`];
      if (typeof method !== 'function') throw new Error(`${wsdlFile} declares no operation ${operation}`);
      // soap's promise methods resolve with [result, rawResponse, soapHeader, rawRequest].
      const answer: unknown = await method.call(ready, args, { signal: AbortSignal.timeout(timeoutMs) });
      return Array.isArray(answer) ? (answer[0] as unknown) : undefined;
    },
  };
}
