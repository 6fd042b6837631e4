// The rotation function Secrets Manager invokes for the stack's generated secrets (signing, verification link).
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { createSecretsManagerClient } from '../../middleware/config/secrets.js';
import { errorText, functionObservability } from '../shared/observability.js';
import { RotationError, rotationEventSchema, SecretRotator } from './secret-rotation.js';

const { logger, auditLogger } = functionObservability('secret-rotation');
// Bounded as every AWS client of the functions is: a Secrets Manager that hangs fails the step, with its
// error and audit lines, well before the function's own timeout cuts the invocation without either.
const rotator = new SecretRotator({ client: createSecretsManagerClient() });

/**
 * One rotation step per invocation. A thrown error fails the step; Secrets Manager retries it and,
 * while the rotation is unfinished, AWSCURRENT keeps its old value. Values are never logged.
 */
async function rotationStep(event: unknown): Promise<void> {
  const parsed = rotationEventSchema.safeParse(event);
  if (!parsed.success) throw new RotationError('Not a Secrets Manager rotation event');
  const { SecretId: secretId, Step: step, ClientRequestToken: token } = parsed.data;
  // The token is the id of the version the rotation makes: the four steps of one rotation share it, and a
  // failed rotation's runbook removes the AWSPENDING label from it. (A key ending in "token" is redacted.)
  logger.appendKeys({ rotation_version_id: token });
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

// Like every sample function's, never its whole event, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
export const handler = middy(rotationStep).use(
  injectLambdaContext(logger, { resetKeys: true, logEvent: false }),
);
