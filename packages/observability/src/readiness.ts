export class DeadlineExceededError extends Error {
  override readonly name = 'DeadlineExceededError';
}

/** Rejects with DeadlineExceededError when `work` has not settled within `ms`; the work itself is not cancelled. */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceededError(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export type ReadinessResult = { ok: true } | { ok: false; error: unknown };

/**
 * Runs every readiness probe at once (each bounded by its own deadline) and reports each
 * outcome; callers decide what the body shows. Only our own stores belong here: a Google or AFIP
 * outage must not take a process out of rotation.
 */
export async function checkReadiness<K extends string>(
  probes: Readonly<Record<K, () => Promise<unknown>>>,
): Promise<{ ready: boolean; results: Record<K, ReadinessResult> }> {
  const names = Object.keys(probes) as K[];
  const outcomes = await Promise.all(
    names.map((name) =>
      probes[name]().then(
        (): ReadinessResult => ({ ok: true }),
        (error: unknown): ReadinessResult => ({ ok: false, error }),
      ),
    ),
  );
  const results = Object.fromEntries(names.map((name, i) => [name, outcomes[i]])) as Record<K, ReadinessResult>;
  return { ready: outcomes.every((o) => o.ok), results };
}
