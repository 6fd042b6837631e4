import { randomInt, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { createLocalSqsClient } from '../../bin/runtime/local-sqs.js';
import { readQueueEnvironment } from '../../functions/shared/environment.js';
import { phoneCodeKey, userKey } from '../../functions/shared/keys.js';
import { functionSqsClient } from '../../functions/shared/sqs-client.js';
import { createVerificationLink } from '../../functions/shared/verification-link.js';
import {
  RegistrationEmails,
  verificationEmailPerUserPolicy,
} from '../../functions/users/registration-emails.js';
import { SmsBudgets } from '../../functions/users/sms-budgets.js';
import {
  phoneCodeMaxAttempts,
  phoneCodeMaxIssued,
  phoneCodeResendIntervalSec,
  phoneCodeRetentionSec,
  phoneCodeTtlSec,
  smsPerNumberPolicy,
  UsersModel,
} from '../../functions/users/users-model.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import {
  ConflictError,
  GoneError,
  ServiceUnavailableError,
  TooManyRequestsError,
  ValidationError,
} from '../../middleware/errors.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { decodedEml, drained, emailsTo, receiveAll, sendRaw, until } from '../email-worker/helpers.js';
import { unreachableSqsClient } from '../helpers/local-worker-queues.js';
import { testObservability } from '../helpers/observability.js';
import {
  adminUser,
  randomLoopbackAddress,
  sharedToolkitTableSms,
  useLocalRuntime,
} from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

const api = useLocalRuntime({ as: adminUser, emailRetryBaseDelaySec: 1 });
const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documents = createDocumentClient(dynamoDb);

interface Problem {
  status: number;
  code: string;
  detail: string;
  errors?: { field: string; message: string }[];
}

let phonesUsed = randomInt(0, 8000);
/** A valid US number no other test of this file uses (libphonenumber accepts 415-555-xxxx). */
const uniquePhone = () => `+1415555${String(1000 + (phonesUsed++ % 9000))}`;

async function register(withPhone: boolean) {
  const email = `verify-${randomUUID()}@example.com`;
  const phone = withPhone ? uniquePhone() : undefined;
  const response = await api.request('POST', '/users', {
    body: { email, name: 'Vera', ...(phone ? { phone } : {}) },
  });
  expect(response.status).toBe(201);
  return { id: (response.body as { id: string }).id, email, phone };
}

/**
 * The path and query of the links in the user's verification emails, oldest first, once `emailCount`
 * emails (the welcome email included) landed in the SMTP sink.
 */
async function verificationPaths(email: string, emailCount: number): Promise<string[]> {
  const messages = await emailsTo(api.runtime(), email, emailCount);
  const raw = messages.map((message) => decodedEml(message.raw)).join('\n');
  const links = raw.match(
    /http:\/\/127\.0\.0\.1:\d+\/users\/[\w-]+\/verify\?expires=\d+&signature=[\w-]{43}/g,
  );
  if (!links) throw new Error('no verification link in the emails');
  return links.map((link) => {
    const url = new URL(link);
    return `${url.pathname}${url.search}`;
  });
}

/** The path and query of the link in the user's verification email, as it landed in the SMTP sink. */
async function verificationPath(email: string): Promise<string> {
  return (await verificationPaths(email, 2))[0] as string;
}

/** The codes of the first `count` SMS sent to `phone`, oldest first, read from the worker's outbox files. */
function smsCodes(phone: string, count: number): Promise<string[]> {
  return until(() => {
    const dir = api.runtime().smsOutboxDir;
    const codes = readdirSync(dir)
      .filter((file) => file.endsWith('.sms.txt'))
      .sort()
      .map((name) => readFileSync(join(dir, name), 'utf8'))
      .filter((content) => content.startsWith(`To: ${phone}\n`))
      .map((content) => /code is (\d{6})\./.exec(content)?.[1] as string);
    return codes.length >= count ? codes.slice(0, count) : undefined;
  });
}

/** The code of the SMS sent to `phone` at registration. */
const smsCode = async (phone: string) => (await smsCodes(phone, 1))[0] as string;

/** The users model over the runtime's table and encryption key, as the users function builds it. */
const runtimeUsersModel = (documentClient = documents) =>
  new UsersModel(
    documentClient,
    testTableNames.app,
    new Encryptor({ keyProvider: new LocalKeyProvider({ key: process.env.ENCRYPTION_KEY ?? '' }) }),
  );

/** The users function's per-user verification-email limit, read from the same table. */
const verificationEmailsPerUser = () =>
  new RateLimiter({
    policy: verificationEmailPerUserPolicy,
    tableName: testTableNames.toolkit,
    client: dynamoDb,
  });

async function storedUser(id: string) {
  const { Item } = await documents.send(
    new GetCommand({ TableName: testTableNames.app, Key: userKey(id), ConsistentRead: true }),
  );
  return Item;
}

const wrongCode = (code: string) => (code === '000000' ? '000001' : '000000');

/** What a browser sends with a page request or a form post: HTML first, anything else at q=0.8. */
const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8';

/** The link posted as its page's button posts it: an empty form, from a browser. */
const submitForm = (path: string) =>
  api.request('POST', path, {
    token: null,
    body: '',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: browserAccept },
  });

/** The link posted by an API client: no body, JSON answers. */
const postLink = (path: string) => api.request('POST', path, { token: null });

/**
 * The path and query of a link to `id` made with the runtime's own secret (this process's environment),
 * as issued a day and a minute ago: genuine, and expired.
 */
function expiredLinkPath(id: string): string {
  const url = new URL(
    createVerificationLink({
      baseUrl: api.runtime().url,
      userId: id,
      secret: process.env.VERIFICATION_LINK_SECRET ?? '',
      now: Date.now() - 24 * 3600 * 1000 - 60_000,
    }).url,
  );
  return `${url.pathname}${url.search}`;
}

/** The expired link page's one form: a button posting to the sibling route, by a relative action. */
const newLinkForm =
  '<form method="post" action="verification-email"><button type="submit">Send me a new link</button></form>';

/** The forms of a page, whole. */
const formsOf = (html: string) => html.match(/<form\b.*?<\/form>/g);

/** Every header the verification pages carry, exactly. */
function expectPageHeaders(response: { headers: Headers }) {
  expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(response.headers.get('referrer-policy')).toBe('no-referrer');
  expect(response.headers.get('content-security-policy')).toBe(
    "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  );
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
}

/**
 * The tags of a page of ours: a document in English, with a title, its content in one `<main>`, and
 * nothing it loads or runs.
 */
function expectPlainPage(html: string, title: string) {
  expect(html).toMatch(/^<!DOCTYPE html>\n<html lang="en">\n/);
  expect(html).toContain(`<title>${title}</title>`);
  expect(html).toContain(`<body><main><h1>${title}</h1><p>`);
  expect(html).toMatch(/<\/main><\/body>\n<\/html>$/);
  expect(html.match(/<main\b/g)).toEqual(['<main']);
  expect(html).not.toMatch(/<script|<link|<img|<iframe|<style|\b(?:src|href|style|on\w+)=/i);
}

/** The one paragraph of a page. */
const paragraphOf = (html: string) => /<p>(.*?)<\/p>/.exec(html)?.[1];

const linkRefused = 'This verification link cannot be used';
const changedLink =
  'This link is incomplete or has been changed. Open the link from your newest verification email, or copy the whole address into your browser.';
const registrationGone = 'This registration no longer exists. Register again to get a new link.';
const alreadyConfirmedTitle = 'Email address already confirmed';
const alreadyConfirmed =
  'Your email address is already confirmed. There is nothing more to do; you can close this page.';

describe('GET /users/{id}/verify (the link in the verification email)', () => {
  it('verifies nothing: it answers a page whose one button posts the link back, for a browser or a scanner alike', async () => {
    const { id, email } = await register(false);
    const path = await verificationPath(email);
    const signature = new URL(path, 'http://x').searchParams.get('signature') ?? '';

    for (const accept of [browserAccept, '*/*', 'application/json']) {
      const page = await api.request('GET', path, { token: null, headers: { accept } });
      expect(page.status, accept).toBe(200);
      expectPageHeaders(page);
      expectPlainPage(page.text, 'Confirm your email address');
      // One form, without action: it posts to the page's own URL, so no part of the link is written in it.
      expect(page.text.match(/<form\b[^>]*>/g)).toEqual(['<form method="post">']);
      expect(page.text.match(/<button\b[^>]*>/g)).toEqual(['<button type="submit">']);
      expect(page.text).not.toContain(signature);
      expect(page.text).not.toContain(id);
    }
    // Opened three times, as gateways and scanners do: still unverified.
    expect((await storedUser(id))?.emailVerifiedAt).toBeUndefined();
    expect((await storedUser(id))?.expiresAt).toBeTypeOf('number');
  });

  it('says the address is already confirmed, with no button, when the link is opened again after it was', async () => {
    const { id, email } = await register(false);
    const path = await verificationPath(email);
    expect((await submitForm(path)).status).toBe(200);
    for (const accept of [browserAccept, '*/*']) {
      const again = await api.request('GET', path, { token: null, headers: { accept } });
      expect(again.status, accept).toBe(200);
      expectPageHeaders(again);
      expectPlainPage(again.text, alreadyConfirmedTitle);
      expect(paragraphOf(again.text)).toBe(alreadyConfirmed);
      expect(again.text).not.toContain('<form');
    }
    expect(Date.parse((await storedUser(id))?.emailVerifiedAt)).not.toBeNaN();
  });

  it('answers HEAD as it answers GET, without the body, and verifies nothing; another method gets 405 naming GET, HEAD and POST', async () => {
    const { id, email } = await register(false);
    const path = await verificationPath(email);
    const head = await api.request('HEAD', path, { token: null, headers: { accept: browserAccept } });
    expect(head.status).toBe(200);
    expectPageHeaders(head);
    expect(head.text).toBe('');
    const put = await api.request('PUT', path, { token: null });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, HEAD, POST');
    expect((await storedUser(id))?.emailVerifiedAt).toBeUndefined();
  });
});

describe('POST /users/{id}/verify (the link, confirmed)', () => {
  it('verifies the email from the link in the outbox, once, and says so on the user', async () => {
    const { id, email } = await register(false);
    const path = await verificationPath(email);

    const first = await postLink(path);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('application/json');
    const body = first.body as { id: string; emailVerified: boolean; emailVerifiedAt: string };
    expect(body).toMatchObject({ id, emailVerified: true });
    expect(Date.parse(body.emailVerifiedAt)).not.toBeNaN();

    // A second press (a double click, a page reloaded) changes nothing.
    const again = await postLink(path);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(body);

    const read = await api.request('GET', `/users/${id}`);
    expect(read.body).toMatchObject({ id, email, emailVerifiedAt: body.emailVerifiedAt });
  });

  it("answers a browser's form post, from the page's button, with a page saying the address is confirmed", async () => {
    const { id, email } = await register(false);
    const path = await verificationPath(email);
    const confirmed = await submitForm(path);
    expect(confirmed.status).toBe(200);
    expectPageHeaders(confirmed);
    expectPlainPage(confirmed.text, 'Email address confirmed');
    expect(confirmed.text).toContain('<p>Your email address is confirmed. You can close this page.</p>');
    expect(confirmed.text).not.toContain('<form');
    const stored = await storedUser(id);
    expect(Date.parse(stored?.emailVerifiedAt)).not.toBeNaN();
    expect(stored).not.toHaveProperty('expiresAt');
  });

  it('follows a link a mail client or tracker appended parameters to', async () => {
    const { id, email } = await register(false);
    const tracked = `${await verificationPath(email)}&utm_source=newsletter&fbclid=abc`;
    expect((await api.request('GET', tracked, { token: null })).status).toBe(200);
    const response = await postLink(tracked);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id, emailVerified: true });
  });

  it('refuses a body that is not an empty form, before the link is read, and verifies nothing', async () => {
    const { id, email } = await register(false);
    const path = await verificationPath(email);
    const refusals: [string, string, number, string][] = [
      ['text/plain', 'x', 415, 'Content-Type must be application/x-www-form-urlencoded, or no body'],
      ['application/json', '{}', 415, 'Content-Type must be application/x-www-form-urlencoded, or no body'],
      // 8193 bytes is one over the limit; 8192 is within it, so its field is named instead.
      [
        'application/x-www-form-urlencoded',
        `a=${'x'.repeat(8 * 1024 - 1)}`,
        413,
        'Request body exceeds 8192 bytes',
      ],
      [
        'application/x-www-form-urlencoded',
        `a=${'x'.repeat(8 * 1024 - 2)}`,
        400,
        'This request takes no body fields',
      ],
      ['application/x-www-form-urlencoded', 'confirm=yes', 400, 'This request takes no body fields'],
    ];
    for (const [contentType, body, status, detail] of refusals) {
      // A browser's Accept too: these are no refusal of the link, so they stay problem+json.
      const response = await api.request('POST', path, {
        token: null,
        body,
        headers: { 'content-type': contentType, accept: browserAccept },
      });
      expect({ contentType, status: response.status }).toEqual({ contentType, status });
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect((response.body as Problem).detail).toBe(detail);
    }
    const fields = await api.request('POST', path, {
      token: null,
      body: 'confirm=yes&confirm=no&next=%2F',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect((fields.body as Problem).errors).toEqual([
      { field: 'body.confirm', message: 'Unknown field' },
      { field: 'body.next', message: 'Unknown field' },
    ]);
    // Of 21 fields, the first 20 are named.
    const manyFields = await api.request('POST', path, {
      token: null,
      body: Array.from({ length: 21 }, (_, index) => `f${index}=1`).join('&'),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(manyFields.status).toBe(400);
    expect((manyFields.body as Problem).errors).toEqual(
      Array.from({ length: 20 }, (_, index) => ({ field: `body.f${index}`, message: 'Unknown field' })),
    );
    // A media type is case-insensitive and may carry parameters: this is a form, whose field is refused.
    const mixedCaseForm = await api.request('POST', path, {
      token: null,
      body: 'a=1',
      headers: { 'content-type': 'Application/X-WWW-Form-Urlencoded; charset=UTF-8' },
    });
    expect(mixedCaseForm.status).toBe(400);
    expect((mixedCaseForm.body as Problem).errors).toEqual([{ field: 'body.a', message: 'Unknown field' }]);
    expect((await storedUser(id))?.emailVerifiedAt).toBeUndefined();
    // The same link, posted as the page posts it, still works, also with the identity coding named in any case.
    for (const contentEncoding of ['identity', 'Identity']) {
      const response = await api.request('POST', path, {
        token: null,
        body: '',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-encoding': contentEncoding,
          accept: browserAccept,
        },
      });
      expect({ contentEncoding, status: response.status }).toEqual({ contentEncoding, status: 200 });
    }
  });

  it('names a form field sent in UTF-8 as it was written, raw or percent-encoded', async () => {
    const { id, email } = await register(false);
    const response = await api.request('POST', await verificationPath(email), {
      token: null,
      body: 'café=1&%C3%A9t%C3%A9=2',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(response.status).toBe(400);
    expect((response.body as Problem).errors).toEqual([
      { field: 'body.café', message: 'Unknown field' },
      { field: 'body.été', message: 'Unknown field' },
    ]);
    expect((await storedUser(id))?.emailVerifiedAt).toBeUndefined();
  });
});

describe('a refused link, opened or posted', () => {
  const methods = ['GET', 'POST'] as const;

  it('answers 400 to a tampered, truncated or foreign link and verifies nothing', async () => {
    const victim = await register(false);
    const other = await register(false);
    const path = await verificationPath(victim.email);
    const url = new URL(path, 'http://x');
    const signature = url.searchParams.get('signature') ?? '';
    const flipped = `${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`;
    const expires = url.searchParams.get('expires') ?? '';
    const cases = [
      `/users/${victim.id}/verify?expires=${expires}&signature=${flipped}`,
      `/users/${victim.id}/verify?expires=${Number(expires) + 3600}&signature=${signature}`,
      // Another user's id with this user's signature.
      `/users/${other.id}/verify?expires=${expires}&signature=${signature}`,
    ];
    for (const method of methods) {
      for (const bad of cases) {
        const response = await api.request(method, bad, { token: null });
        expect(response.status, `${method} ${bad}`).toBe(400);
        expect(response.headers.get('content-type')).toBe('application/problem+json');
        expect((response.body as Problem).detail).toBe('The verification link is invalid');
        expect((response.body as Problem).errors).toEqual([
          { field: 'query.signature', message: 'Does not sign this link' },
        ]);
      }
      for (const bad of [
        `/users/${victim.id}/verify`,
        `/users/${victim.id}/verify?expires=${expires}`,
        `/users/${victim.id}/verify?expires=soon&signature=${signature}`,
        `/users/${victim.id}/verify?expires=${expires}&signature=short`,
        `/users/${victim.id}/verify?expires=1e12&signature=${signature}`,
      ]) {
        const response = await api.request(method, bad, { token: null });
        expect(response.status, `${method} ${bad}`).toBe(400);
        expect((response.body as Problem).code).toBe('VALIDATION_FAILED');
      }
    }
    expect((await storedUser(victim.id))?.emailVerifiedAt).toBeUndefined();
    expect((await storedUser(other.id))?.emailVerifiedAt).toBeUndefined();
  });

  it('is a page saying, in words of its own, what to do for a browser (Accept prefers text/html), with the same status', async () => {
    const victim = await register(false);
    const path = await verificationPath(victim.email);
    const url = new URL(path, 'http://x');
    const expires = url.searchParams.get('expires') ?? '';
    const tampered = path.replace(/signature=[\w-]/, (start) =>
      start.endsWith('A') ? 'signature=B' : 'signature=A',
    );
    // Tampered, a signature cut short, no query at all, an id that cannot be one: the same page.
    for (const bad of [
      tampered,
      `/users/${victim.id}/verify?expires=${expires}&signature=short`,
      `/users/${victim.id}/verify`,
      `/users/not%20an%20id/verify?${url.searchParams}`,
    ]) {
      const opened = await api.request('GET', bad, { token: null, headers: { accept: browserAccept } });
      const posted = await submitForm(bad);
      for (const response of [opened, posted]) {
        expect({ bad, status: response.status }).toEqual({ bad, status: 400 });
        expectPageHeaders(response);
        expectPlainPage(response.text, linkRefused);
        expect(paragraphOf(response.text), bad).toBe(changedLink);
        expect(response.text).not.toContain('<form');
      }
    }
    expect((await storedUser(victim.id))?.emailVerifiedAt).toBeUndefined();
  });

  it('is a page saying when to open the link again for a browser over the strict limit: 429 and Retry-After kept', async () => {
    const { email } = await register(false);
    const path = await verificationPath(email);
    const sourceIp = randomLoopbackAddress();
    const open = () =>
      api.request('GET', path, { token: null, sourceIp, headers: { accept: browserAccept } });
    // strict admits 10 a minute and refills one every 6 s, so on a busy machine the 10 opens can earn an
    // eleventh; open until refused (bounded) rather than assume none refilled.
    let admitted = 0;
    let refused = await open();
    while (refused.status === 200 && admitted < 15) {
      admitted += 1;
      refused = await open();
    }
    expect(admitted).toBeGreaterThanOrEqual(10);
    expect(refused.status).toBe(429);
    expectPageHeaders(refused);
    expectPlainPage(refused.text, 'Too many attempts');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(paragraphOf(refused.text)).toBe(
      'Too many requests came from your connection in a short time. Open the link again in 1 minute.',
    );
    // An API client over the same limit still gets the problem.
    const api429 = await api.request('POST', path, { token: null, sourceIp });
    expect(api429.status).toBe(429);
    expect(api429.headers.get('content-type')).toBe('application/problem+json');
  });

  it('answers 410 to an expired link of an address confirmed since, saying so, with no new link offered', async () => {
    const { id, email } = await register(false);
    expect((await postLink(await verificationPath(email))).status).toBe(200);
    const path = expiredLinkPath(id);
    for (const method of methods) {
      const response = await api.request(method, path, { token: null });
      expect(response.status, method).toBe(410);
      expect(response.body).toMatchObject({
        code: 'GONE',
        detail: 'The verification link has expired; the address is already confirmed',
      });
    }
    const opened = await api.request('GET', path, { token: null, headers: { accept: browserAccept } });
    expect(opened.status).toBe(410);
    expectPageHeaders(opened);
    expectPlainPage(opened.text, alreadyConfirmedTitle);
    expect(paragraphOf(opened.text)).toBe(alreadyConfirmed);
    expect(opened.text).not.toContain('<form');
  });

  it('answers 410 to an authentic link that has expired, and its page offers a new link', async () => {
    const { id, email } = await register(false);
    await verificationPath(email);
    const path = expiredLinkPath(id);
    for (const method of methods) {
      const response = await api.request(method, path, { token: null });
      expect(response.status, method).toBe(410);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(response.body).toMatchObject({
        code: 'GONE',
        detail: 'The verification link has expired; ask for a new one',
      });
    }
    const opened = await api.request('GET', path, { token: null, headers: { accept: browserAccept } });
    const posted = await submitForm(path);
    for (const page of [opened, posted]) {
      expect(page.status).toBe(410);
      expectPageHeaders(page);
      expectPlainPage(page.text, linkRefused);
      expect(paragraphOf(page.text)).toBe(
        'This link has expired. Press the button to get a new link by email.',
      );
      expect(formsOf(page.text)).toEqual([newLinkForm]);
      expect(page.text).not.toContain(id);
    }
    expect((await storedUser(id))?.emailVerifiedAt).toBeUndefined();

    // The button, as a browser sends it: the form's relative action, resolved against the page's URL.
    const action = new URL('verification-email', new URL(path, api.runtime().url));
    expect(action.pathname).toBe(`/users/${id}/verification-email`);
    expect(action.search).toBe('');
    const sent = await submitForm(action.pathname);
    expect(sent.status).toBe(202);
    expectPageHeaders(sent);
    expectPlainPage(sent.text, 'A new link is on its way');
    expect(sent.text).toContain(
      '<p>A new link is on its way to your address. Open it from the newest email; you can close this page.</p>',
    );
    expect(sent.text).not.toContain('<form');
    // The welcome email, the first verification email and the new one, whose link opens the confirm page.
    const paths = await verificationPaths(email, 3);
    expect(paths).toHaveLength(2);
    const fresh = await api.request('GET', paths[1] as string, {
      token: null,
      headers: { accept: browserAccept },
    });
    expect(fresh.status).toBe(200);
    expectPlainPage(fresh.text, 'Confirm your email address');
    expect(await verificationEmailsPerUser().getRemaining(id)).toBe(verificationEmailPerUserPolicy.limit - 1);
  });

  it('offers no new link when the registration went with the expired link: deleted or lapsed', async () => {
    const deleted = await register(false);
    const lapsed = await register(false);
    await Promise.all([verificationPath(deleted.email), verificationPath(lapsed.email)]);
    expect((await api.request('DELETE', `/admin/users/${deleted.id}`)).status).toBe(204);
    // Past its window (TTL has not deleted it yet): read as absent.
    await documents.send(
      new UpdateCommand({
        TableName: testTableNames.app,
        Key: userKey(lapsed.id),
        UpdateExpression: 'SET expiresAt = :past',
        ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 60 },
      }),
    );
    for (const { id } of [deleted, lapsed]) {
      const path = expiredLinkPath(id);
      const opened = await api.request('GET', path, { token: null, headers: { accept: browserAccept } });
      const posted = await submitForm(path);
      for (const page of [opened, posted]) {
        expect(page.status, id).toBe(410);
        expectPageHeaders(page);
        expectPlainPage(page.text, linkRefused);
        expect(paragraphOf(page.text)).toBe(registrationGone);
        expect(page.text).not.toContain('<form');
      }
    }
  });

  it('answers 404 to a valid link of a deleted user and does not re-create the user', async () => {
    const { id, email } = await register(false);
    const path = await verificationPath(email);
    expect((await api.request('DELETE', `/admin/users/${id}`)).status).toBe(204);
    for (const method of methods) {
      const response = await api.request(method, path, { token: null });
      expect(response.status, method).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect((response.body as Problem).detail).toBe(`User ${id} not found`);
    }
    // A browser's page says what to do, and names no id.
    const opened = await api.request('GET', path, { token: null, headers: { accept: browserAccept } });
    const posted = await submitForm(path);
    for (const page of [opened, posted]) {
      expect(page.status).toBe(404);
      expectPageHeaders(page);
      expectPlainPage(page.text, linkRefused);
      expect(paragraphOf(page.text)).toBe(registrationGone);
      expect(page.text).not.toContain(id);
    }
    expect(await storedUser(id)).toBeUndefined();
  });
});

describe('POST /users/{id}/verify-phone (the SMS code)', () => {
  it('deletes a pending code with its user', async () => {
    const { id, phone } = await register(true);
    await smsCode(phone as string);
    const pendingCode = () =>
      documents.send(
        new GetCommand({ TableName: testTableNames.app, Key: phoneCodeKey(id), ConsistentRead: true }),
      );
    expect((await pendingCode()).Item).toBeDefined();
    expect((await api.request('DELETE', `/admin/users/${id}`)).status).toBe(204);
    expect((await pendingCode()).Item).toBeUndefined();
  });

  it('sends a 6-digit code by SMS on registration and verifies the phone with it', async () => {
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    // Only a keyed hash of the code is stored, next to the user, expiring with the table's TTL.
    const { Item: pending } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: phoneCodeKey(id), ConsistentRead: true }),
    );
    expect(JSON.stringify(pending)).not.toContain(code);
    expect(pending).toMatchObject({ attempts: 0, codeHash: expect.any(String) });
    // The item outlives its code by a day, so a late guess reads "expired" until TTL removes it.
    expect(pending?.expiresAt - pending?.codeExpiresAt).toBe(phoneCodeRetentionSec);
    expect(pending?.codeExpiresAt * 1000).toBeGreaterThan(Date.now() + phoneCodeTtlSec * 1000 - 60_000);

    const response = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id, phoneVerified: true, phoneVerifiedAt: expect.any(String) });
    const read = await api.request('GET', `/users/${id}`);
    expect(read.body).toMatchObject({
      phone,
      phoneVerifiedAt: (response.body as { phoneVerifiedAt: string }).phoneVerifiedAt,
    });

    // The code is used up: the same request again is a 409, and the user is unchanged.
    const again = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    expect(again.status).toBe(409);
    expect((again.body as Problem).detail).toBe('The phone number is already verified');
  });

  it('answers 400 to a wrong code, counting the attempt, and verifies nothing', async () => {
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    const response = await api.request('POST', `/users/${id}/verify-phone`, {
      body: { code: wrongCode(code) },
      token: null,
    });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      code: 'VALIDATION_FAILED',
      detail: `Wrong code; ${phoneCodeMaxAttempts - 1} attempt(s) left`,
      errors: [{ field: 'body.code', message: 'Wrong code' }],
    });
    expect((await storedUser(id))?.phoneVerifiedAt).toBeUndefined();
    // The right code still works afterwards.
    const right = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    expect(right.status).toBe(200);
  });

  it('allows only a bounded number of guesses, sent back to back through the runtime: then even the right code is refused', async () => {
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    // Twice the budget, each from its own address (so the per-IP rate limit does not interfere). The runtime
    // runs one users invocation at a time, so these arrive one after another; the race itself, on separate
    // instances at once, is in test/e2e/model-races.test.ts.
    const guesses = await Promise.all(
      Array.from({ length: phoneCodeMaxAttempts * 2 }, () =>
        api.request('POST', `/users/${id}/verify-phone`, { body: { code: wrongCode(code) }, token: null }),
      ),
    );
    const statuses = guesses.map((guess) => guess.status).sort();
    expect(statuses).toEqual([
      ...Array(phoneCodeMaxAttempts).fill(400),
      ...Array(phoneCodeMaxAttempts).fill(410),
    ]);
    const right = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    expect(right.status).toBe(410);
    expect((right.body as Problem).detail).toBe('Too many wrong codes; a new code is needed');
    expect((await storedUser(id))?.phoneVerifiedAt).toBeUndefined();
  });

  /** Moves the code's expiry (and optionally its item's TTL) into the past, as if time had passed. */
  async function age(id: string, fields: string[]) {
    await documents.send(
      new UpdateCommand({
        TableName: testTableNames.app,
        Key: phoneCodeKey(id),
        UpdateExpression: `SET ${fields.map((field) => `${field} = :past`).join(', ')}`,
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 1 },
      }),
    );
  }

  it('answers 410 to an expired code', async () => {
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    // Ten minutes pass: the code has expired, its item stays for a day (TTL sweeps do not touch it).
    await age(id, ['codeExpiresAt']);
    const response = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    expect(response.status).toBe(410);
    expect((response.body as Problem).detail).toBe('The code has expired; a new code is needed');
    expect((await storedUser(id))?.phoneVerifiedAt).toBeUndefined();
  });

  it('reads an item past its TTL as gone even before TTL deletes it: 409, nothing pending', async () => {
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    await age(id, ['codeExpiresAt', 'expiresAt']);
    const response = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    // Either the item is still there (read as absent) or the local TTL sweep removed it: the same answer.
    expect(response.status).toBe(409);
    expect((response.body as Problem).detail).toBe('No phone verification is pending for this user');
    expect((await storedUser(id))?.phoneVerifiedAt).toBeUndefined();
  });

  it('answers 409 for a user without a phone and 404 for an unknown user', async () => {
    const { id } = await register(false);
    const none = await api.request('POST', `/users/${id}/verify-phone`, {
      body: { code: '123456' },
      token: null,
    });
    expect(none.status).toBe(409);
    expect((none.body as Problem).detail).toBe('No phone verification is pending for this user');
    const unknown = await api.request('POST', `/users/${randomUUID()}/verify-phone`, {
      body: { code: '123456' },
      token: null,
    });
    expect(unknown.status).toBe(404);
  });

  it('answers 400 to a malformed body without spending an attempt', async () => {
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    for (const body of [{ code: '12345' }, { code: 123456 }, { code: '12345a' }, { code, admin: true }, {}]) {
      const response = await api.request('POST', `/users/${id}/verify-phone`, { body, token: null });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect((response.body as Problem).code).toBe('VALIDATION_FAILED');
    }
    const notJson = await api.request('POST', `/users/${id}/verify-phone`, {
      body: '{"code": ',
      headers: { 'content-type': 'application/json' },
      token: null,
    });
    expect(notJson.status).toBe(400);
    const { Item: pending } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: phoneCodeKey(id), ConsistentRead: true }),
    );
    expect(pending?.attempts).toBe(0);
  });

  it('limits guesses per client address (preset mfaVerify)', async () => {
    const { id, phone } = await register(true);
    // A fixed guess would be the code one time in a million; a wrong one is always wrong.
    const guess = wrongCode(await smsCode(phone as string));
    const sourceIp = '127.0.99.1';
    const first = await api.request('POST', `/users/${id}/verify-phone`, {
      body: { code: guess },
      token: null,
      sourceIp,
    });
    expect(first.status).toBe(400);
    const second = await api.request('POST', `/users/${id}/verify-phone`, {
      body: { code: guess },
      token: null,
      sourceIp,
    });
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('POST /users/{id}/verification-email (the link again)', () => {
  const resend = (id: string) => api.request('POST', `/users/${id}/verification-email`, { token: null });

  it('sends another verification email, greeting the user by the stored name, whose link verifies, and then answers 409', async () => {
    const { id, email } = await register(false);
    const sent = await resend(id);
    expect(sent.status).toBe(202);
    const body = sent.body as { id: string; expiresAt: string };
    expect(body.id).toBe(id);
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now() + 23 * 3600_000);
    // The welcome email and two verification emails, each with a link.
    const paths = await verificationPaths(email, 3);
    expect(paths).toHaveLength(2);
    // The second one's name was read back from the user item, where it is sealed.
    const greeted = (await emailsTo(api.runtime(), email, 3)).filter((message) =>
      decodedEml(message.raw).includes('Hello Vera,'),
    );
    expect(greeted).toHaveLength(2);
    expect((await postLink(paths[1] as string)).status).toBe(200);

    const again = await resend(id);
    expect(again.status).toBe(409);
    expect((again.body as Problem).detail).toBe('The email is already verified');
    // Refused before a unit is spent: only the one email sent counts.
    const perUser = verificationEmailsPerUser();
    expect(await perUser.getRemaining(id)).toBe(verificationEmailPerUserPolicy.limit - 1);
  });

  it('sends a user three in a burst, then answers 429 with Retry-After; other users are not held back', async () => {
    const { id } = await register(false);
    for (let index = 0; index < 3; index += 1) expect((await resend(id)).status).toBe(202);
    const refused = await resend(id);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((refused.body as Problem).detail).toBe(
      'Too many verification emails were sent to this user; try again later',
    );
    const other = await register(false);
    expect((await resend(other.id)).status).toBe(202);
  });

  it('answers 404 for an unknown user and 400 for an id that cannot be one', async () => {
    expect((await resend(randomUUID())).status).toBe(404);
    expect((await resend('not%20an%20id')).status).toBe(400);
  });

  it('reads no body: an API client sending JSON still gets 202 and JSON, as before the form post', async () => {
    const { id } = await register(false);
    const sent = await api.request('POST', `/users/${id}/verification-email`, { token: null, body: {} });
    expect(sent.status).toBe(202);
    expect(sent.headers.get('content-type')).toBe('application/json');
    expect(sent.body).toMatchObject({ id });
  });

  it("answers a browser's form post with pages: 404, 429 (when to try again) and 409 say what to do", async () => {
    const unknownId = randomUUID();
    const unknown = await submitForm(`/users/${unknownId}/verification-email`);
    expect(unknown.status).toBe(404);
    expectPageHeaders(unknown);
    expectPlainPage(unknown.text, 'No new link was sent');
    expect(paragraphOf(unknown.text)).toBe(registrationGone);
    expect(unknown.text).not.toContain(unknownId);
    expect(unknown.text).not.toContain('<form');

    const { id, email } = await register(false);
    for (let index = 0; index < 3; index += 1) {
      expect((await submitForm(`/users/${id}/verification-email`)).status).toBe(202);
    }
    const refused = await submitForm(`/users/${id}/verification-email`);
    expect(refused.status).toBe(429);
    expectPageHeaders(refused);
    expectPlainPage(refused.text, 'No new link was sent');
    // One every 20 minutes once the burst of three is spent: the wait is a few seconds short of 1200 at most.
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(1140);
    expect(retryAfter).toBeLessThanOrEqual(1200);
    expect(paragraphOf(refused.text)).toBe(
      'Too many new links were asked for in a short time. Try again in 20 minutes, or use the link in your newest verification email if it has not expired.',
    );
    // An API client's 429 is the problem, as before.
    const apiRefused = await resend(id);
    expect(apiRefused.status).toBe(429);
    expect(apiRefused.headers.get('content-type')).toBe('application/problem+json');
    expect((apiRefused.body as Problem).detail).toBe(
      'Too many verification emails were sent to this user; try again later',
    );

    expect((await postLink(await verificationPath(email))).status).toBe(200);
    const verified = await submitForm(`/users/${id}/verification-email`);
    expect(verified.status).toBe(409);
    expectPageHeaders(verified);
    expectPlainPage(verified.text, alreadyConfirmedTitle);
    expect(paragraphOf(verified.text)).toBe(alreadyConfirmed);
  });
});

describe('POST /users/{id}/phone-code (a new SMS code)', () => {
  const codeItem = async (id: string) =>
    (
      await documents.send(
        new GetCommand({ TableName: testTableNames.app, Key: phoneCodeKey(id), ConsistentRead: true }),
      )
    ).Item;

  it('sends one phone number a burst of at most five codes, however many users register it', async () => {
    const phone = uniquePhone();
    const registerWith = async () => {
      const response = await api.request('POST', '/users', {
        body: { email: `shared-${randomUUID()}@example.com`, name: 'Pump', phone },
      });
      expect(response.status).toBe(201);
      return (response.body as { id: string }).id;
    };
    const ids: string[] = [];
    for (let registration = 0; registration < smsPerNumberPolicy.limit + 1; registration += 1) {
      ids.push(await registerWith());
    }
    // Five SMS for five registrations; the sixth user is registered, with its emails, but gets no code.
    expect(await smsCodes(phone, smsPerNumberPolicy.limit)).toHaveLength(smsPerNumberPolicy.limit);
    const last = ids.at(-1) as string;
    expect(await codeItem(last)).toBeUndefined();
    const refused = await api.request('POST', `/users/${last}/phone-code`, { token: null });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({
      detail: 'Too many codes were sent to this phone number; try again later',
    });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(phoneCodeResendIntervalSec);
    expect(await codeItem(last)).toBeUndefined();
    // Still five once the worker has drained the queue: no sixth SMS reached the outbox.
    await drained(api.runtime());
    const sent = readdirSync(api.runtime().smsOutboxDir)
      .map((name) => readFileSync(join(api.runtime().smsOutboxDir, name), 'utf8'))
      .filter((content) => content.startsWith(`To: ${phone}\n`));
    expect(sent).toHaveLength(smsPerNumberPolicy.limit);
  });

  /** Moves the last code's sending back past the resend interval, as if a minute had passed. */
  async function waitOutResendInterval(id: string) {
    await documents.send(
      new UpdateCommand({
        TableName: testTableNames.app,
        Key: phoneCodeKey(id),
        UpdateExpression: 'SET issuedAt = :before',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: {
          ':before': new Date(Date.now() - (phoneCodeResendIntervalSec + 1) * 1000).toISOString(),
        },
      }),
    );
  }

  const requestCode = (id: string) => api.request('POST', `/users/${id}/phone-code`, { token: null });

  it('sends a new code that replaces the pending one; only the new one verifies', async () => {
    const { id, phone } = await register(true);
    const first = await smsCode(phone as string);
    await waitOutResendInterval(id);
    const response = await requestCode(id);
    expect(response.status).toBe(202);
    expect(response.body).toEqual({ id, expiresAt: expect.any(String) });
    const expiresAt = Date.parse((response.body as { expiresAt: string }).expiresAt);
    expect(expiresAt).toBeGreaterThan(Date.now() + (phoneCodeTtlSec - 60) * 1000);
    const [, second] = await smsCodes(phone as string, 2);
    expect(await codeItem(id)).toMatchObject({ attempts: 0, issuedCount: 2 });

    if (first !== second) {
      const old = await api.request('POST', `/users/${id}/verify-phone`, {
        body: { code: first },
        token: null,
      });
      expect(old.status).toBe(400);
    }
    const verified = await api.request('POST', `/users/${id}/verify-phone`, {
      body: { code: second },
      token: null,
    });
    expect(verified.status).toBe(200);
    const again = await requestCode(id);
    expect(again.status).toBe(409);
    expect((again.body as Problem).detail).toBe('The phone number is already verified');
  });

  it('refuses a new code within the resend interval with 429 and Retry-After, keeping the pending code', async () => {
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    const before = await codeItem(id);
    const response = await requestCode(id);
    expect(response.status).toBe(429);
    expect((response.body as Problem).detail).toBe('A code was sent less than a minute ago');
    const retryAfter = Number(response.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(phoneCodeResendIntervalSec);
    expect(await codeItem(id)).toEqual(before);
    const verified = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    expect(verified.status).toBe(200);
  });

  it('gives one code to concurrent requests, the others 429 (several instances racing)', async () => {
    const { id, phone } = await register(true);
    await smsCode(phone as string);
    // Model calls, not HTTP: the local runtime runs one instance per function, which would serialise them.
    // Each has a DynamoDB client of its own, as separate instances do.
    const later = new Date(Date.now() + (phoneCodeResendIntervalSec + 1) * 1000);
    const instances = Array.from({ length: 8 }, () =>
      createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') })),
    );
    const results = await Promise.allSettled(
      instances.map((client) => runtimeUsersModel(client).issuePhoneCode(id, { now: later })),
    );
    for (const client of instances) client.destroy();
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of results.filter((outcome) => outcome.status === 'rejected')) {
      expect(result.reason).toBeInstanceOf(TooManyRequestsError);
    }
    expect((await codeItem(id))?.issuedCount).toBe(2);
  });

  it(`sends at most ${phoneCodeMaxIssued} codes per user, then 429 until the code item lapses`, async () => {
    const { id, phone } = await register(true);
    await smsCode(phone as string);
    for (let sent = 1; sent < phoneCodeMaxIssued; sent += 1) {
      await waitOutResendInterval(id);
      expect((await requestCode(id)).status).toBe(202);
    }
    await waitOutResendInterval(id);
    const refused = await requestCode(id);
    expect(refused.status).toBe(429);
    expect((refused.body as Problem).detail).toBe('Too many codes were sent to this user; try again later');
    // Until a day after the last code expires, when the item's TTL lapses.
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(phoneCodeRetentionSec);
    expect((await codeItem(id))?.issuedCount).toBe(phoneCodeMaxIssued);
    await smsCodes(phone as string, phoneCodeMaxIssued);
  });

  it('counts an SMS the queue never took against nothing: neither the user’s codes nor the number’s budget', async () => {
    const { id, phone } = await register(true);
    await smsCode(phone as string);
    // The users function's own wiring, over the runtime's table, key and SMS budget, but with an SQS that
    // is down, then one that is back.
    const model = runtimeUsersModel();
    const budget = new RateLimiter({
      policy: smsPerNumberPolicy,
      tableName: api.runtime().tableNames.toolkit,
      client: dynamoDb,
    });
    const budgetKey = await model.smsBudgetKey(phone as string);
    const { observability } = testObservability('users');
    const smsBudgets = new SmsBudgets({
      store: new DynamoDbCounterStore({ tableName: api.runtime().tableNames.toolkit, client: dynamoDb }),
      sms: sharedToolkitTableSms,
      numberKey: (number) => model.smsBudgetKey(number),
      observability,
    });
    const emailsThrough = (sqs: SQSClient) => {
      const { logger, auditLogger, metrics } = observability;
      return new RegistrationEmails({
        sqs,
        queues: readQueueEnvironment({
          EMAIL_QUEUE_URL: api.runtime().sqs.queueUrls['bulwark-email'],
          VERIFICATION_LINK_SECRET: 'x'.repeat(32),
        }),
        logger,
        auditLogger,
        metrics,
        issuePhoneCode: (userId) => model.issuePhoneCode(userId),
        admitSms: (number, purpose) => smsBudgets.admit(number, purpose),
      });
    };
    await waitOutResendInterval(id);
    const before = await codeItem(id);
    const budgetBefore = await budget.getRemaining(budgetKey);
    const down = emailsThrough(unreachableSqsClient());
    const user = await model.get(id);
    // More failures than the user's codes and the number's burst: none of them counts.
    for (let attempt = 0; attempt <= Math.max(phoneCodeMaxIssued, smsPerNumberPolicy.limit); attempt += 1) {
      await expect(down.sendPhoneCode(user, undefined)).rejects.toBeInstanceOf(ServiceUnavailableError);
    }
    expect(await codeItem(id)).toEqual(before);
    expect(await budget.getRemaining(budgetKey)).toBe(budgetBefore);
    // The queue is back: a retry gets a code at once, the user's second.
    const back = emailsThrough(functionSqsClient(api.runtime().sqs.endpoint));
    await back.sendPhoneCode(user, undefined);
    expect(await codeItem(id)).toMatchObject({ issuedCount: 2 });
    expect(await budget.getRemaining(budgetKey)).toBe(budgetBefore - 1);
    const [, code] = await smsCodes(phone as string, 2);
    const verified = await api.request('POST', `/users/${id}/verify-phone`, { body: { code }, token: null });
    expect(verified.status).toBe(200);
  });

  it('withdraws a code only while it is the pending one: never over a used code or a deleted user', async () => {
    const model = runtimeUsersModel();
    const later = () => new Date(Date.now() + (phoneCodeResendIntervalSec + 1) * 1000);
    // No code before: withdrawing leaves none.
    const fresh = await register(true);
    await smsCode(fresh.phone as string);
    await documents.send(new DeleteCommand({ TableName: testTableNames.app, Key: phoneCodeKey(fresh.id) }));
    await (await model.issuePhoneCode(fresh.id)).withdraw();
    expect(await codeItem(fresh.id)).toBeUndefined();
    // The code was used meanwhile: the registration's code does not come back.
    const used = await register(true);
    await smsCode(used.phone as string);
    const issued = await model.issuePhoneCode(used.id, { now: later() });
    await model.verifyPhone(used.id, issued.code);
    await issued.withdraw();
    expect(await codeItem(used.id)).toBeUndefined();
    // The user was deleted meanwhile (and its code with it): nothing is re-created.
    const gone = await register(true);
    await smsCode(gone.phone as string);
    const orphan = await model.issuePhoneCode(gone.id, { now: later() });
    expect((await api.request('DELETE', `/admin/users/${gone.id}`)).status).toBe(204);
    await orphan.withdraw();
    expect(await codeItem(gone.id)).toBeUndefined();
  });

  it('withdraws no code that was guessed at: the guess stays counted, and the code with it', async () => {
    const model = runtimeUsersModel();
    const { id, phone } = await register(true);
    await smsCode(phone as string);
    const later = new Date(Date.now() + (phoneCodeResendIntervalSec + 1) * 1000);
    const issued = await model.issuePhoneCode(id, { now: later });
    // A guess between the issue and its withdrawal (an SMS budget refusing it, the queue failing).
    await expect(model.verifyPhone(id, wrongCode(issued.code))).rejects.toBeInstanceOf(ValidationError);
    await issued.withdraw();
    expect(await codeItem(id)).toMatchObject({
      attempts: 1,
      issuedCount: 2,
      issuedAt: later.toISOString(),
    });
  });

  it('never issues over a guess made while it was issuing, so no withdrawal can give a used guess back', async () => {
    const model = runtimeUsersModel();
    const { id, phone } = await register(true);
    const code = await smsCode(phone as string);
    for (let guess = 1; guess < phoneCodeMaxAttempts; guess += 1) {
      await expect(model.verifyPhone(id, wrongCode(code))).rejects.toThrow();
    }
    const later = new Date(Date.now() + (phoneCodeResendIntervalSec + 1) * 1000);
    // The last guess lands after the new issue read the item and before it writes (its one transaction).
    const issuingClient = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
    issuingClient.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName?.startsWith('TransactWrite')) {
          await expect(model.verifyPhone(id, wrongCode(code))).rejects.toThrow();
        }
        return next(args);
      },
      { step: 'initialize', name: 'guessBeforeTheIssueWrites' },
    );
    const issuing = runtimeUsersModel(createDocumentClient(issuingClient)).issuePhoneCode(id, { now: later });
    await expect(issuing).rejects.toBeInstanceOf(ConflictError);
    issuingClient.destroy();
    expect(await codeItem(id)).toMatchObject({ attempts: phoneCodeMaxAttempts, issuedCount: 1 });
    await expect(model.verifyPhone(id, code)).rejects.toBeInstanceOf(GoneError);
  });

  it('answers 409 without a phone, 404 for an unknown user and 400 for a malformed id, sending nothing', async () => {
    const { id } = await register(false);
    const none = await requestCode(id);
    expect(none.status).toBe(409);
    expect((none.body as Problem).detail).toBe('The user has no phone number');
    expect(await codeItem(id)).toBeUndefined();
    expect((await requestCode(randomUUID())).status).toBe(404);
    const malformed = await requestCode('no%23such%23id');
    expect(malformed.status).toBe(400);
    expect((malformed.body as Problem).code).toBe('VALIDATION_FAILED');
  });
});

describe('phone numbers that are not E.164', () => {
  it('are refused at registration with a 400 naming the field, and nothing is stored or sent', async () => {
    for (const phone of ['4155552671', '+1 415 555 2671', '+999999', '+14155552671x', '']) {
      const email = `bad-phone-${randomUUID()}@example.com`;
      const response = await api.request('POST', '/users', { body: { email, name: 'Bad', phone } });
      expect(response.status, phone).toBe(400);
      expect((response.body as Problem).errors?.map((error) => error.field)).toEqual(['body.phone']);
    }
  });

  it('are dead-lettered by the worker with the reason, never sent', async () => {
    const body = JSON.stringify({
      id: randomUUID(),
      type: 'sms',
      to: '+1 415 555 2671',
      template: 'sms-verification',
      data: { code: '123456', expiresInMinutes: 10 },
    });
    await sendRaw(api.runtime(), body);
    const dead = await until(async () => {
      const messages = await receiveAll(api.runtime(), 'bulwark-email-dlq');
      return messages.find((message) => message.Body === body);
    });
    expect(dead.MessageAttributes?.['bulwark-dead-letter-reason']?.StringValue).toMatch(
      /^Invalid message: to: .*E\.164/,
    );
  });
});

// Last in the file: it deletes and recreates the runtime's email queue.
describe('POST /users/{id}/verification-email while the email queue is gone', () => {
  /** Sends `request` while SQS refuses every send to the email queue, which is recreated after it. */
  async function withoutEmailQueue<T>(request: () => Promise<T>): Promise<T> {
    const sqs = createLocalSqsClient(api.runtime().sqs.endpoint);
    const queueUrl = api.runtime().sqs.queueUrls['bulwark-email'];
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: ['VisibilityTimeout', 'RedrivePolicy'],
      }),
    );
    await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
    try {
      return await request();
    } finally {
      await sqs.send(new CreateQueueCommand({ QueueName: 'bulwark-email', Attributes }));
      sqs.destroy();
    }
  }

  it('answers 503 when the email cannot be queued, and the request does not count against the user’s limit', async () => {
    const { id } = await register(false);
    const perUser = verificationEmailsPerUser();
    expect((await api.request('POST', `/users/${id}/verification-email`, { token: null })).status).toBe(202);
    const refused = await withoutEmailQueue(() =>
      api.request('POST', `/users/${id}/verification-email`, { token: null }),
    );
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('60');
    expect(await perUser.getRemaining(id)).toBe(verificationEmailPerUserPolicy.limit - 1);
  });

  it('answers the 503 with the RateLimit headers of the route limit that admitted it', async () => {
    const { id } = await register(false);
    const refused = await withoutEmailQueue(() =>
      api.request('POST', `/users/${id}/verification-email`, {
        token: null,
        sourceIp: randomLoopbackAddress(),
      }),
    );
    expect(refused.status).toBe(503);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(refused.headers.get('ratelimit-policy')).toBe('"register";q=3;w=300');
    expect(refused.headers.get('ratelimit')).toBe('"register";r=2;t=100');
    expect(refused.headers.get('x-ratelimit-limit')).toBe('3');
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('2');
    // The function's own answer edits reach it once, as on any other answer.
    expect(refused.headers.get('x-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  /**
   * Registers a user from `sourceIp` (one unit of its `register` limit, 3 per 5 minutes), then, while
   * the queue refuses every send, asks `path` of that user more times than the limit has units left.
   * Each answer is a 503 that gives its unit back, so once the queue is back the same address is admitted.
   */
  async function retriedAfterQueueFailures(path: 'verification-email' | 'phone-code') {
    const sourceIp = randomLoopbackAddress();
    const phone = path === 'phone-code' ? uniquePhone() : undefined;
    const refusals = await withoutEmailQueue(async () => {
      const registered = await api.request('POST', '/users', {
        token: null,
        sourceIp,
        body: { email: `retry-${randomUUID()}@example.com`, name: 'Rita', ...(phone ? { phone } : {}) },
      });
      expect(registered.status).toBe(201);
      const { id } = registered.body as { id: string };
      const answers = [];
      for (let attempt = 0; attempt < 4; attempt += 1) {
        answers.push(await api.request('POST', `/users/${id}/${path}`, { token: null, sourceIp }));
      }
      return { id, answers };
    });
    for (const refused of refusals.answers) {
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('60');
      // Each one found the two units the registration left: the one before it gave its own back.
      expect(refused.headers.get('x-ratelimit-remaining')).toBe('1');
    }
    const retried = await api.request('POST', `/users/${refusals.id}/${path}`, { token: null, sourceIp });
    expect(retried.status).toBe(202);
    expect(retried.headers.get('x-ratelimit-remaining')).toBe('1');
    // Tests share the tenant's users: this one goes.
    expect((await api.request('DELETE', `/admin/users/${refusals.id}`)).status).toBe(204);
  }

  it('gives a verification email’s 503 its unit of the per-address register limit back', async () => {
    await retriedAfterQueueFailures('verification-email');
  });

  it('gives a phone code’s 503 its unit of the per-address register limit back', async () => {
    await retriedAfterQueueFailures('phone-code');
  });
});
