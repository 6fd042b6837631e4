// The audit lines of the email verification link: opening it is a plain request, posting it verifies.
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { httpEvent, lambdaContext } from '../audit/fixtures.js';
import { decodedEml, emailsTo } from '../email-worker/helpers.js';
import { captureStdout } from '../helpers/log-capture.js';
import { adminUser, randomLoopbackAddress, useLocalRuntime } from '../helpers/runtime.js';

// Before any function module loads: their loggers read it at cold start.
process.env.POWERTOOLS_LOG_LEVEL = 'INFO';

const api = useLocalRuntime({ as: adminUser });
const output = captureStdout();

const auditOf = (correlationId: string) =>
  output
    .audit()
    .filter((audit) => audit.correlationId === correlationId)
    .map((audit) => ({
      eventType: audit.eventType,
      outcome: audit.outcome,
      statusCode: audit.statusCode,
      errorCode: (audit.metadata as { error?: { code?: string } } | undefined)?.error?.code,
    }));

/** The `user.email_verified` audit lines of the user whose link `path` is. */
const emailVerifiedLines = (path: string) =>
  output
    .audit()
    .filter(
      (audit) => audit.eventType === 'user.email_verified' && path.startsWith(`/users/${audit.userId}/`),
    );

/** A request header that names the request's audit lines. */
const traced = () => ({ 'x-correlation-id': randomUUID() });

/** A new user's verification link, path and query, as it landed in the SMTP sink. */
async function registeredLink(): Promise<string> {
  const email = `verify-audit-${randomUUID()}@example.com`;
  expect((await api.request('POST', '/users', { body: { email, name: 'Vera' } })).status).toBe(201);
  const messages = await emailsTo(api.runtime(), email, 2);
  const link = messages
    .map((message) => decodedEml(message.raw))
    .join('\n')
    .match(/http:\/\/127\.0\.0\.1:\d+\/users\/[\w-]+\/verify\?expires=\d+&signature=[\w-]{43}/)?.[0];
  if (!link) throw new Error('no verification link in the emails');
  const url = new URL(link);
  return `${url.pathname}${url.search}`;
}

describe('the audit lines of the verification link', () => {
  it('has user.email_verified on the post that verifies, never on opening the link', async () => {
    const path = await registeredLink();

    const opening = traced();
    expect((await api.request('GET', path, { token: null, headers: opening })).status).toBe(200);
    expect(auditOf(opening['x-correlation-id'])).toEqual([
      { eventType: 'http.request', outcome: 'success', statusCode: 200, errorCode: undefined },
    ]);

    const posting = traced();
    expect((await api.request('POST', path, { token: null, headers: posting })).status).toBe(200);
    expect(auditOf(posting['x-correlation-id'])).toEqual([
      { eventType: 'user.email_verified', outcome: 'success', statusCode: undefined, errorCode: undefined },
      { eventType: 'http.request', outcome: 'success', statusCode: 200, errorCode: undefined },
    ]);
  });

  it('has user.email_verified once when the link is posted again: the repeat answers 200 and verified nothing', async () => {
    const path = await registeredLink();
    const first = await api.request('POST', path, { token: null });
    const repeat = await api.request('POST', path, { token: null });
    expect([first.status, repeat.status]).toEqual([200, 200]);
    expect(repeat.body).toEqual(first.body);
    expect(emailVerifiedLines(path)).toHaveLength(1);
  });

  it('has user.email_verified once when the link is posted five times at once', async () => {
    const path = await registeredLink();
    // The runtime runs one invocation of a function at a time: the handler itself, invoked five times at once.
    const { handler } = await import('../../functions/users/handler.js');
    const url = new URL(path, 'http://localhost');
    const id = url.pathname.split('/')[2] ?? '';
    const post = (): APIGatewayProxyEventV2 => {
      const event = httpEvent({
        method: 'POST',
        path: url.pathname,
        routeKey: 'POST /users/{id}/verify',
        headers: { accept: 'application/json' },
      });
      return {
        ...event,
        rawQueryString: url.search.slice(1),
        queryStringParameters: Object.fromEntries(url.searchParams),
        pathParameters: { id },
        requestContext: {
          ...event.requestContext,
          http: { ...event.requestContext.http, sourceIp: randomLoopbackAddress() },
        },
      };
    };
    const answers = (await Promise.all(
      Array.from({ length: 5 }, () => handler(post(), lambdaContext())),
    )) as APIGatewayProxyStructuredResultV2[];
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 200, 200, 200, 200]);
    // Every answer names the one verification time that was stored.
    const verifiedAt = answers.map((answer) => JSON.parse(answer.body ?? '{}').emailVerifiedAt);
    expect(new Set(verifiedAt).size).toBe(1);
    expect(emailVerifiedLines(path)).toHaveLength(1);
  });

  it('audits a refusal shown to a browser as a page as the refusal it is', async () => {
    const path = await registeredLink();
    const refused = traced();
    const tampered = `${path.slice(0, -1)}${path.endsWith('A') ? 'B' : 'A'}`;
    const page = await api.request('POST', tampered, {
      token: null,
      headers: { ...refused, accept: 'text/html' },
    });
    expect(page.status).toBe(400);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(auditOf(refused['x-correlation-id'])).toEqual([
      {
        eventType: 'user.email_verification_failed',
        outcome: 'denied',
        statusCode: undefined,
        errorCode: undefined,
      },
      { eventType: 'http.request', outcome: 'failure', statusCode: 400, errorCode: 'VALIDATION_FAILED' },
    ]);
  });

  it('has user.email_verification_failed, naming the user, for a link whose signature this deployment did not make, opened or posted', async () => {
    const path = await registeredLink();
    const userId = path.split('/')[2];
    const forged = path.replace(/signature=[\w-]{43}/, `signature=${'A'.repeat(43)}`);
    for (const method of ['GET', 'POST']) {
      const refused = traced();
      expect((await api.request(method, forged, { token: null, headers: refused })).status).toBe(400);
      const lines = output.audit().filter((audit) => audit.correlationId === refused['x-correlation-id']);
      expect(lines.filter((audit) => audit.eventType === 'user.email_verification_failed')).toEqual([
        expect.objectContaining({ outcome: 'denied', userId, metadata: { reason: 'bad_signature' } }),
      ]);
    }
    // The genuine link still verifies: the refusals changed nothing.
    expect((await api.request('POST', path, { token: null })).status).toBe(200);
  });
});
