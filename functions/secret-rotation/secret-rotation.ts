// Secrets Manager rotation for generated random secrets: createSecret, setSecret, testSecret, finishSecret.
import { randomBytes } from 'node:crypto';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { isUsableSecretValue, minRotatingSecretLength } from '../../middleware/auth/hmac-secret.js';
import * as z from '../shared/zod.js';

/** The event Secrets Manager invokes a rotation function with, once per step. */
export const rotationEventSchema = z.object({
  SecretId: z.string().check(z.minLength(1)),
  ClientRequestToken: z.string().check(z.minLength(1)),
  Step: z.enum(['createSecret', 'setSecret', 'testSecret', 'finishSecret']),
});

export type RotationEvent = z.infer<typeof rotationEventSchema>;
export type RotationStep = RotationEvent['Step'];

/** A rotation that must not go on: Secrets Manager marks it failed and keeps AWSCURRENT as it was. */
export class RotationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RotationError';
  }
}

/** Characters of a generated secret: 36 random bytes in base64url, 288 bits. */
export const generatedSecretLength = 48;

/** A secret the functions accept (SERVICE_SIGNING_SECRET_*, VERIFICATION_LINK_SECRET). */
const plainSecretSchema = z.string().check(z.refine(isUsableSecretValue));

/**
 * The request-signing shape: `{ current, previous? }`, so one deploy-time reference carries both
 * sides of a rotation and verifiers accept either (functions/shared/environment.ts).
 */
const signingSecretSchema = z.strictObject({
  current: plainSecretSchema,
  previous: z.optional(plainSecretSchema),
});

function generateSecret(): string {
  return randomBytes(36).toString('base64url');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The `current` of a signing-shaped value, or undefined for a plain secret. A JSON object in any other
 * shape is refused: rotating it into a plain string would leave every `getRotatingSecret` reader
 * failing with `not_json`. So is a value that opens like one (`{`, as VERIFICATION_LINK_SECRET is read)
 * but does not parse, such as a hand edit that lost its closing brace: its readers already fail.
 */
function currentSigningSecret(currentValue: string): string | undefined {
  const parsed = parseJson(currentValue);
  if (!isJsonObject(parsed)) {
    if (currentValue.trimStart().startsWith('{')) {
      throw new RotationError(
        'The current value starts with { but is not valid JSON: correct it to { current, previous? }, then rotate again',
      );
    }
    return undefined;
  }
  const signing = signingSecretSchema.safeParse(parsed);
  if (!signing.success) {
    throw new RotationError(
      `The current value is JSON but not { current, previous? } with values of at least ${minRotatingSecretLength} characters besides whitespace`,
    );
  }
  return signing.data.current;
}

/**
 * The next value for a secret, in the shape of its current one: a JSON signing secret becomes
 * `{ current: <new>, previous: <old current> }`; a plain string becomes a new string. Throws a
 * RotationError when the current value is a JSON object in another shape, or starts with `{` and does
 * not parse.
 */
export function nextSecretValue(currentValue: string, generate: () => string = generateSecret): string {
  const currentSecret = currentSigningSecret(currentValue);
  if (currentSecret !== undefined) return JSON.stringify({ current: generate(), previous: currentSecret });
  return generate();
}

/**
 * Whether a pending value has the shape the functions accept and follows from the current value: a
 * signing value must keep the current secret as its `previous` (else promoting it would invalidate
 * everything signed with the value in use) and bring a new `current`. Throws a RotationError when the
 * current value is a JSON object in another shape, or starts with `{` and does not parse.
 */
export function isValidPendingValue(currentValue: string, pendingValue: string): boolean {
  const currentSecret = currentSigningSecret(currentValue);
  if (currentSecret !== undefined) {
    const pending = signingSecretSchema.safeParse(parseJson(pendingValue));
    return (
      pending.success && pending.data.previous === currentSecret && pending.data.current !== currentSecret
    );
  }
  return plainSecretSchema.safeParse(pendingValue).success && pendingValue !== currentValue;
}

export interface SecretRotatorOptions {
  readonly client: SecretsManagerClient;
  /** @default 36 random bytes in base64url */
  readonly generate?: () => string;
}

/**
 * The four steps of a Secrets Manager rotation for secrets the stack generates itself (no database or
 * provider to update): the new value is created under AWSPENDING, checked, then made AWSCURRENT;
 * Secrets Manager then labels the old one AWSPREVIOUS, which `SecretStore.matchVersion` and the
 * `{ current, previous }` signing shape accept while callers catch up. Every step is idempotent,
 * because Secrets Manager retries a failed step.
 *
 * @example
 * const rotator = new SecretRotator({ client: createSecretsManagerClient() });
 * await rotator.rotate({ SecretId, ClientRequestToken, Step: 'createSecret' });
 */
export class SecretRotator {
  private readonly client: SecretsManagerClient;
  private readonly generate: () => string;

  constructor(options: SecretRotatorOptions) {
    this.client = options.client;
    this.generate = options.generate ?? generateSecret;
  }

  /** Runs one step; returns 'skipped' when the token's version is already current (a retried finish). */
  async rotate(event: RotationEvent): Promise<'done' | 'skipped'> {
    const { SecretId: secretId, ClientRequestToken: token, Step: step } = event;
    const description = await this.client.send(new DescribeSecretCommand({ SecretId: secretId }));
    if (description.RotationEnabled !== true)
      throw new RotationError('Rotation is not enabled on the secret');
    const stages = description.VersionIdsToStages?.[token];
    if (stages === undefined) throw new RotationError('The token is not a version of the secret');
    if (stages.includes('AWSCURRENT')) return 'skipped';
    if (!stages.includes('AWSPENDING')) throw new RotationError('The token version is not AWSPENDING');

    switch (step) {
      case 'createSecret':
        await this.createSecret(secretId, token);
        break;
      case 'setSecret':
        // Nothing outside Secrets Manager holds the value: the functions read it from here.
        break;
      case 'testSecret':
        await this.testSecret(secretId, token);
        break;
      case 'finishSecret':
        await this.finishSecret(secretId, token, description.VersionIdsToStages ?? {});
        break;
    }
    return 'done';
  }

  private async currentValue(secretId: string): Promise<string> {
    const current = await this.client.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
    );
    if (current.SecretString === undefined) throw new RotationError('The current version is not a string');
    return current.SecretString;
  }

  private async pendingValue(secretId: string, token: string): Promise<string | undefined> {
    try {
      const pending = await this.client.send(
        new GetSecretValueCommand({ SecretId: secretId, VersionId: token, VersionStage: 'AWSPENDING' }),
      );
      return pending.SecretString;
    } catch (error) {
      if (error instanceof Error && error.name === 'ResourceNotFoundException') return undefined;
      throw error;
    }
  }

  private async createSecret(secretId: string, token: string): Promise<void> {
    const current = await this.currentValue(secretId);
    const pending = await this.pendingValue(secretId, token);
    if (pending === undefined) {
      await this.client.send(
        new PutSecretValueCommand({
          SecretId: secretId,
          ClientRequestToken: token,
          SecretString: nextSecretValue(current, this.generate),
          VersionStages: ['AWSPENDING'],
        }),
      );
      return;
    }
    // A retried createSecret finds its value already stored under this token: keep it while it still
    // follows from the current value. One that does not (the current value was replaced after it was
    // made) cannot be regenerated, because PutSecretValue refuses new content for an existing version id.
    if (!isValidPendingValue(current, pending)) {
      throw new RotationError(
        'The pending version does not follow from the current value and cannot be replaced: remove AWSPENDING from it, then rotate again',
      );
    }
  }

  private async testSecret(secretId: string, token: string): Promise<void> {
    const [current, pending] = await Promise.all([
      this.currentValue(secretId),
      this.pendingValue(secretId, token),
    ]);
    if (pending === undefined || !isValidPendingValue(current, pending)) {
      throw new RotationError(
        'The pending value does not have the shape the functions accept or does not follow from the current value',
      );
    }
  }

  private async finishSecret(
    secretId: string,
    token: string,
    versions: Record<string, string[]>,
  ): Promise<void> {
    const currentVersion = Object.entries(versions).find(([, stages]) => stages.includes('AWSCURRENT'))?.[0];
    await this.client.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: token,
        ...(currentVersion === undefined ? {} : { RemoveFromVersionId: currentVersion }),
      }),
    );
  }
}
