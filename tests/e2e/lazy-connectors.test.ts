import { startEntryPoint } from '../support/processes';

/** The connector libraries a fresh process loads for `target` (see tests/support/loaded-connectors.ts). */
async function connectorsLoadedBy(target: string): Promise<string[]> {
  const child = startEntryPoint('tests/support/loaded-connectors.ts', {}, [target]);
  const { code } = await child.exited;
  expect({ code, output: child.output() }).toMatchObject({ code: 0 });
  const lastLine = child.output().trim().split('\n').at(-1) ?? '[]';
  return JSON.parse(lastLine) as string[];
}

describe('connectors load only where their kind is served', () => {
  it('the API, with every kind registered, loads no connector library', async () => {
    expect(await connectorsLoadedBy('api')).toEqual([]);
  }, 60_000);

  it("a kind's worker half loads its own connector and no other kind's", async () => {
    // AFIP's SOAP client and CMS signer come with its worker half, never Google's or S3's.
    expect((await connectorsLoadedBy('kind:afip-sync')).sort()).toEqual(['node-forge', 'soap']);
    // googleapis (seconds to import) waits for the calendar worker to start; the AWS SDK for an S3 target.
    expect(await connectorsLoadedBy('kind:calendar-sync')).toEqual([]);
    expect(await connectorsLoadedBy('kind:backup')).toEqual([]);
  }, 90_000);
});
