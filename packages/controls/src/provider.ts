import type { FlagValue } from '@jobfleet/db';
import { FlagNotFoundError, TypeMismatchError, type EvaluationContext, type Hook, type JsonValue, type Provider, type ResolutionDetails } from '@openfeature/server-sdk';
import type { FleetControls } from './live';

/** Flag metadata key: the flag's version (its last change, ms), so outcomes are counted per version. */
export const FLAG_VERSION_METADATA = 'version';

type ValueType = 'boolean' | 'string' | 'number' | 'object';

function typeOf(value: FlagValue): ValueType {
  return typeof value === 'object' ? 'object' : (typeof value as ValueType);
}

/**
 * An OpenFeature provider over our own flags (Postgres, cached in the process and refreshed on
 * Redis messages and by polling: see createFleetControls). The tenant is the targeting key. A
 * standard flag service's provider can take its place: callers only know the OpenFeature client.
 */
export class FleetFlagProvider implements Provider {
  readonly metadata = { name: 'jobfleet-fleet-controls' } as const;
  readonly runsOn = 'server';

  constructor(
    private readonly controls: FleetControls,
    /** Provider hooks, e.g. the rollback monitor's, which records what each job was served. */
    readonly hooks: Hook[] = [],
  ) {}

  resolveBooleanEvaluation(flagKey: string, _default: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    return this.resolve(flagKey, context, 'boolean');
  }

  resolveStringEvaluation(flagKey: string, _default: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
    return this.resolve(flagKey, context, 'string');
  }

  resolveNumberEvaluation(flagKey: string, _default: number, context: EvaluationContext): Promise<ResolutionDetails<number>> {
    return this.resolve(flagKey, context, 'number');
  }

  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, _default: T, context: EvaluationContext): Promise<ResolutionDetails<T>> {
    return this.resolve(flagKey, context, 'object');
  }

  // The SDK turns a thrown error into the caller's default value with the error's code.
  private async resolve<T>(flagKey: string, context: EvaluationContext, expected: ValueType): Promise<ResolutionDetails<T>> {
    const snapshot = this.controls.current();
    const flag = snapshot.flags.get(flagKey);
    const resolution = snapshot.resolveFlag(flagKey, context.targetingKey);
    if (flag === undefined || resolution === undefined) throw new FlagNotFoundError(`no feature flag "${flagKey}"`);
    if (resolution.value === undefined || typeOf(resolution.value) !== expected) {
      throw new TypeMismatchError(`variant "${resolution.variant}" of flag "${flagKey}" is not a ${expected}`);
    }
    return {
      value: resolution.value as T,
      variant: resolution.variant,
      reason: resolution.reason,
      flagMetadata: { [FLAG_VERSION_METADATA]: flag.updatedAt.getTime() },
    };
  }
}
