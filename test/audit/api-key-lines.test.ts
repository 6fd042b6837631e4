// The plaintext key ApiKeyStore.create answers with, under `key`, is shown once and never written to a
// log line: not by an audit line that captures the response body, nor by a redacting logger given it.
import { Logger } from '@aws-lambda-powertools/logger';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { expect, it } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';
import { AuditLogger } from '../../middleware/audit/audit-logger.js';
import { audit } from '../../middleware/audit/middy.js';
import { createRedactor } from '../../middleware/audit/redact.js';
import { ApiKeyStore } from '../../middleware/auth/api-keys.js';
import { captureStdout } from '../helpers/log-capture.js';
import { httpEvent, lambdaContext } from './fixtures.js';

const output = captureStdout();
// create writes one item and reads nothing back, so a client that answers every call with nothing will do.
const apiKeys = new ApiKeyStore({ client: { send: async () => ({}) } as never, tableName: 'toolkit' });
/** The secret part of `bwk_<key id>_<secret>`: its last 43 characters. */
const secretOf = (key: string) => key.slice(-43);

it("writes the key's id but not its plaintext to the audit line of a response that carries it", async () => {
  const lines: AuditEvent[] = [];
  const auditLogger = new AuditLogger({ logToConsole: false, sink: (event) => lines.push(event) });
  let created = { keyId: '', key: '' };
  const handler = middy<APIGatewayProxyEventV2>()
    .use(audit({ auditLogger, logResponseBody: true }))
    .handler(async () => {
      created = await apiKeys.create('alice', ['bookings/read']);
      return {
        statusCode: 201,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(created),
      };
    });
  await handler(httpEvent({ method: 'POST', path: '/api-keys' }), lambdaContext());
  const [line] = lines;
  expect(lines).toHaveLength(1);
  const { response } = line?.metadata ?? {};
  expect(JSON.parse((response as { body: string }).body)).toMatchObject({
    keyId: created.keyId,
    key: 'bwk_[REDACTED]',
  });
  expect(JSON.stringify(lines)).not.toContain(secretOf(created.key));
});

it('writes no part of the plaintext key through a logger whose replacer redacts', async () => {
  const logger = new Logger({
    serviceName: 'keys',
    logLevel: 'INFO',
    jsonReplacerFn: createRedactor().replacer,
  });
  const created = await apiKeys.create('alice', ['bookings/read']);
  logger.info('created', { created });
  logger.info(`created ${created.key}`);
  expect(output.json().map(({ created, message }) => created ?? message)).toEqual([
    expect.objectContaining({ keyId: created.keyId, key: 'bwk_[REDACTED]' }),
    'created bwk_[REDACTED]',
  ]);
  expect(output.lines().join('\n')).not.toContain(secretOf(created.key));
});
