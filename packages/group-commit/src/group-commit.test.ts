import { createGroupCommit } from './index';

describe('group commit', () => {
  function recorder(options: { failOn?: string } = {}) {
    const flushes: string[][] = [];
    const commit = createGroupCommit<{ key: string; value: string }, string>({
      maxBatch: 3,
      conflictKey: (item) => item.key,
      flush(items) {
        flushes.push(items.map((item) => `${item.key}=${item.value}`));
        if (items.some((item) => item.value === options.failOn)) return Promise.reject(new Error('statement failed'));
        return Promise.resolve(items.map((item) => `wrote ${item.key}=${item.value}`));
      },
    });
    return { flushes, commit };
  }

  it('writes the items of callers running at once together, at most maxBatch per flush, each caller getting its own result', async () => {
    const { flushes, commit } = recorder();
    const results = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((key) => commit.submit({ key, value: '1' })));
    expect(results).toEqual(['wrote a=1', 'wrote b=1', 'wrote c=1', 'wrote d=1', 'wrote e=1']);
    expect(flushes).toEqual([['a=1', 'b=1', 'c=1'], ['d=1', 'e=1']]);
  });

  it('never puts two writes of one key in one flush, and keeps their order', async () => {
    const { flushes, commit } = recorder();
    await Promise.all([commit.submit({ key: 'a', value: '1' }), commit.submit({ key: 'a', value: '2' }), commit.submit({ key: 'b', value: '1' })]);
    expect(flushes).toEqual([['a=1', 'b=1'], ['a=2']]);
  });

  it('a lone write goes out at once, and a failed flush fails only its own callers', async () => {
    const { flushes, commit } = recorder({ failOn: 'bad' });
    expect(await commit.submit({ key: 'a', value: '1' })).toBe('wrote a=1');
    const outcomes = await Promise.allSettled([commit.submit({ key: 'x', value: 'bad' }), commit.submit({ key: 'y', value: '1' }), commit.submit({ key: 'x', value: '2' })]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(flushes).toEqual([['a=1'], ['x=bad', 'y=1'], ['x=2']]);
  });

  it('drains: resolves once every item submitted so far is flushed, at once when nothing is pending', async () => {
    const { flushes, commit } = recorder();
    await commit.drain();
    const settled: string[] = [];
    const submitted = ['a', 'b', 'c', 'd'].map((key) => commit.submit({ key, value: '1' }).then((result) => settled.push(result)));
    await commit.drain();
    expect(settled).toHaveLength(4);
    expect(flushes.flat()).toHaveLength(4);
    await Promise.all(submitted);
  });

  it('without conflict keys, lets any items share a flush, one key many times', async () => {
    const flushes: number[][] = [];
    const sum = createGroupCommit<number, number>({
      maxBatch: 100,
      flush(items) {
        flushes.push([...items]);
        return Promise.resolve(items.map((item) => item * 2));
      },
    });
    expect(await Promise.all([1, 1, 2, 1].map((item) => sum.submit(item)))).toEqual([2, 2, 4, 2]);
    expect(flushes).toEqual([[1, 1, 2, 1]]);
  });

  it('with maxInFlight 2, starts a second flush while the first is out, but holds an item whose key a running flush has', async () => {
    const flushes: string[][] = [];
    const releases: (() => void)[] = [];
    const commit = createGroupCommit<{ key: string; value: string }, string>({
      maxBatch: 10,
      maxInFlight: 2,
      conflictKey: (item) => item.key,
      async flush(items) {
        flushes.push(items.map((item) => `${item.key}=${item.value}`));
        await new Promise<void>((resolve) => releases.push(resolve));
        return items.map((item) => `${item.key}=${item.value}`);
      },
    });
    const settled: string[] = [];
    const track = (key: string, value: string) => commit.submit({ key, value }).then((result) => settled.push(result));
    const first = track('a', '1');
    await new Promise((resolve) => setImmediate(resolve));
    expect(flushes).toEqual([['a=1']]);
    // The first flush is out: b goes at once in a second; a's next write waits for the first to end.
    const later = [track('a', '2'), track('b', '1')];
    await new Promise((resolve) => setImmediate(resolve));
    expect(flushes).toEqual([['a=1'], ['b=1']]);
    // Both slots taken: c waits too.
    const third = track('c', '1');
    await new Promise((resolve) => setImmediate(resolve));
    expect(flushes).toHaveLength(2);
    releases[0]?.();
    await first;
    expect(flushes).toEqual([['a=1'], ['b=1'], ['a=2', 'c=1']]);
    releases[1]?.();
    releases[2]?.();
    await Promise.all([...later, third, commit.drain()]);
    expect(settled).toEqual(['a=1', 'b=1', 'a=2', 'c=1']);
  });
});
