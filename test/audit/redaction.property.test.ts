import { Logger } from '@aws-lambda-powertools/logger';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit, correlationIds } from '../../middleware/audit/middy.js';
import { createRedactor, defaultSensitiveKeys } from '../../middleware/audit/redact.js';
import { createSecurityEventListener } from '../../middleware/audit/security-events.js';
import { httpErrorHandler } from '../../middleware/http/middy.js';
import { json } from '../../middleware/http/response.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import { captureStdout } from '../helpers/log-capture.js';
import { httpEvent, lambdaContext } from './fixtures.js';

const output = captureStdout();
const redactor = createRedactor();

/** Secrets carry a marker no other generated value can contain, so any occurrence is a leak. */
const secretValue = fc.stringMatching(/^[A-Za-z0-9]{6,16}$/).map((tail) => `S3CR3T${tail}`);

/** A sensitive key with each letter's case chosen at random (`pAsSwOrD`, `X-API-KEY`). */
const sensitiveKey = fc
  .constantFrom(...defaultSensitiveKeys)
  .chain((key) =>
    fc
      .array(fc.boolean(), { minLength: key.length, maxLength: key.length })
      .map((upper) => [...key].map((char, index) => (upper[index] ? char.toUpperCase() : char)).join('')),
  );

const plainKey = fc.stringMatching(/^[a-z]{1,8}$/).filter((key) => !redactor.isSensitiveKey(key));
const plainValue = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.stringMatching(/^[a-z ]{0,12}$/),
);

/** A credential-shaped value under an innocent key: only value patterns can catch it. */
const shapedSecret = secretValue.chain((secret) =>
  fc.constantFrom(
    `Bearer ${secret}`,
    `eyJ${secret}.${secret}.${secret}`,
    `see password=${secret} here`,
    // A passphrase: the secret follows a space inside the quotes.
    `see password="correct ${secret}" here`,
    `{"token": "two ${secret}"}`,
    // Bulwark's own secrets, known by their prefix wherever they are, in the shape they are made in.
    `created bwk_5c69cb83332287c9_${secret.padEnd(43, '-')}`,
    `signing with whsec_${secret.padEnd(43, '+')}=`,
    // JSON carried inside a string (an SNS message in an SQS body), escaped once and twice.
    JSON.stringify(JSON.stringify({ password: `correct ${secret}`, token: `a " ${secret}` })),
    JSON.stringify(JSON.stringify(JSON.stringify({ password: `correct ${secret}` }))),
  ),
);

/** A secret under a sensitive key: a string, or a whole object or list holding more secrets. */
const secretEntry = fc.tuple(
  sensitiveKey,
  fc.oneof(
    secretValue,
    fc.array(secretValue, { minLength: 1, maxLength: 3 }),
    fc.dictionary(plainKey, secretValue, { minKeys: 1, maxKeys: 3 }),
  ),
);

/** Random nested objects with secrets at random depths. */
const { tree } = fc.letrec<{ tree: Record<string, unknown>; value: unknown }>((tie) => ({
  tree: fc
    .tuple(
      fc.array(fc.tuple(plainKey, tie('value')), { maxLength: 4 }),
      fc.array(secretEntry, { maxLength: 2 }),
      fc.array(fc.tuple(plainKey, shapedSecret), { maxLength: 1 }),
    )
    .map(([plain, secrets, shaped]) => Object.fromEntries([...plain, ...shaped, ...secrets])),
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    plainValue,
    tie('tree'),
    fc.array(tie('tree'), { maxLength: 2 }),
  ),
}));

/** Every secret marker in a generated object (values of sensitive keys and shaped credentials alike). */
function secretsIn(value: unknown): string[] {
  const found = JSON.stringify(value).match(/S3CR3T[A-Za-z0-9]+/g) ?? [];
  return [...new Set(found)];
}

function leaks(lines: readonly string[], secrets: readonly string[]): string[] {
  const text = lines.join('\n');
  return secrets.filter((secret) => text.includes(secret));
}

describe('redaction, property-based', () => {
  it('lets no secret value reach any output line, whatever the nesting and key casing', async () => {
    const logger = new Logger({ serviceName: 'users', logLevel: 'INFO', jsonReplacerFn: redactor.replacer });
    const auditLogger = new AuditLogger({ logger });
    const onEvent = createSecurityEventListener({ auditLogger });
    await fc.assert(
      fc.asyncProperty(tree, async (object) => {
        output.clear();
        const secrets = secretsIn(object);
        // 1. Audit events and security events with the object as metadata.
        auditLogger.log({ eventType: 'custom.operation', metadata: object });
        onEvent({ type: 'admin.action', metadata: { details: object } });
        // 2. Any log line of the function's logger.
        logger.info('handled', { payload: object });
        // 3. A request and response audited with bodies, and a server fault logged by httpErrorHandler.
        const handler = lambdaHandler(
          middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
            .use(correlationIds({ loggers: [logger] }))
            .use(audit({ auditLogger, logRequestBody: true, logResponseBody: true, maxBodyLength: 100_000 }))
            .use(httpErrorHandler({ logger }))
            .handler(async (event) => {
              if (event.rawPath === '/fail') throw new Error('failed', { cause: object });
              return json(200, object);
            }),
        );
        const body = JSON.stringify(object);
        const headers = { 'content-type': 'application/json' };
        await handler(httpEvent({ method: 'POST', path: '/echo', body, headers }), lambdaContext());
        await handler(httpEvent({ method: 'POST', path: '/fail', body, headers }), lambdaContext());
        const lines = output.lines();
        expect(lines.length).toBeGreaterThanOrEqual(6);
        expect(leaks(lines, secrets)).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });
});
