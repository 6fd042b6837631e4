// The rotation function Secrets Manager invokes for the stack's generated secrets (signing, verification link).
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { errorText, functionObservability } from '../shared/observability.js';
import { RotationError, rotationEventSchema, SecretRotator } from './secret-rotation.js';

const { logger, auditLogger } = functionObservability('secret-rotation');
const rotator = new SecretRotator({ client: new SecretsManagerClient({}) });

/**
 * One rotation step per invocation. A thrown error fails the step; Secrets Manager retries it and,
 * while the rotation is unfinished, AWSCURRENT keeps its old value. Values are never logged.
 */
export async function handler(event: unknown): Promise<void> {
  const parsed = rotationEventSchema.safeParse(event);
  if (!parsed.success) throw new RotationError('Not a Secrets Manager rotation event');
  const { SecretId: secretId, Step: step } = parsed.data;
  try {
    const result = await rotator.rotate(parsed.data);
    logger.info('Rotation step', { secretId, step, result });
    if (step === 'finishSecret' && result === 'done') {
      auditLogger.log({ eventType: 'secret.rotated', outcome: 'success', metadata: { secretId } });
    }
  } catch (error) {
    logger.error('Rotation step failed', {
      secretId,
      step,
      error: errorText(error),
    });
    auditLogger.log({
      eventType: 'secret.rotated',
      outcome: 'error',
      reason: error instanceof Error ? error.name : 'error',
      metadata: { secretId, step },
    });
    throw error;
  }
}
