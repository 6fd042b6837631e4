import { randomUUID } from 'node:crypto';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import {
  canonicalQuery,
  canonicalRequest,
  createServiceSigner,
  DynamoDbNonceStore,
  type IncomingSignedRequest,
  type NonceStore,
  ServiceRequestVerifier,
  serviceAuthHeaders,
  signRequest,
} from '../../middleware/auth/service-auth.js';
import { SecretStore } from '../../middleware/config/secrets.js';
import {
  InvalidArgumentError,
  InvalidOptionsError,
  ServiceUnavailableError,
} from '../../middleware/errors.js';
import { percentDecodedPath } from '../../middleware/http/input.js';
import { signedPathOf } from '../../middleware/http/request-event.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { type LateAnswerDynamoDb, startLateAnswerDynamoDb } from '../helpers/late-answer-dynamodb.js';
import { testTableNames } from '../helpers/tables.js';
import { reasonOf } from './helpers.js';

const documentClient = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
const nonceStore = new DynamoDbNonceStore({ client: documentClient, tableName: testTableNames.toolkit });
const current = 'c'.repeat(40);
const previous = 'p'.repeat(40);

function verifier(store: NonceStore = nonceStore): ServiceRequestVerifier {
  return new ServiceRequestVerifier({
    services: { bookings: { current, previous, scopes: ['users/read'] } },
    nonceStore: store,
  });
}

/** A request as the users function receives it, signed by `bookings` with `secret`. */
function signed(
  overrides: {
    secret?: string;
    method?: string;
    url?: string;
    body?: string;
    timestamp?: number;
    nonce?: string;
  } = {},
): IncomingSignedRequest {
  const { secret = current, method = 'POST', url = '/users/42?b=2&a=1', body = '{"x":1}' } = overrides;
  const headers = serviceAuthHeaders(
    { serviceId: 'bookings', secret },
    {
      method,
      url,
      body,
      ...(overrides.timestamp === undefined ? {} : { timestamp: overrides.timestamp }),
      nonce: overrides.nonce ?? randomUUID(),
    },
  );
  const parsed = new URL(url, 'http://users.internal');
  return {
    method,
    // Decoded, as signedPathOf reads it from an HTTP API or Function URL event.
    path: percentDecodedPath(parsed.pathname),
    rawQueryString: parsed.search.slice(1),
    body: Buffer.from(body),
    headers: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value])),
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DynamoDbNonceStore', () => {
  it('refuses at construction a missing client or a name DynamoDB would refuse', () => {
    expect(() => new DynamoDbNonceStore({ client: undefined as never, tableName: '   ' })).toThrow(
      new InvalidOptionsError('DynamoDbNonceStore', [
        'client is required',
        'tableName must be a DynamoDB table name: 3-255 letters, digits, _ . - (got "   ")',
      ]),
    );
  });

  describe('when DynamoDB applies the put but answers it too late', () => {
    let lateDynamoDb: LateAnswerDynamoDb;
    beforeAll(async () => {
      lateDynamoDb = await startLateAnswerDynamoDb(inject('dynamoDbEndpoint'));
    });
    afterAll(() => lateDynamoDb.close());

    it('counts the claim its own repeated put finds as made, and still refuses a second claim', async () => {
      // The client functions/shared/route-auth.ts gives the store: 2 s per attempt, 3 attempts.
      const client = createDocumentClient(createDynamoDbClient({ endpoint: lateDynamoDb.endpoint }));
      const store = new DynamoDbNonceStore({ client, tableName: testTableNames.toolkit });
      const key = `bookings#${randomUUID()}`;
      const expiresAtSec = Math.floor(Date.now() / 1000) + 3601;
      lateDynamoDb.answerLate((operation, body) => operation === 'PutItem' && body.includes(key), 2500);
      expect(await store.claim(key, expiresAtSec, Date.now())).toBe(true);
      // The SDK did send the put again, and that repeat met the item its first attempt wrote.
      expect(lateDynamoDb.picked()).toBe(2);
      expect(await store.claim(key, expiresAtSec, Date.now())).toBe(false);
      client.destroy();
    });
  });
});

describe('signRequest', () => {
  it('covers method, path, sorted query, body hash, timestamp and nonce', () => {
    const canonical = canonicalRequest({
      method: 'post',
      path: '/users/42',
      query: 'b=2&a=1&a=0',
      body: '{}',
      timestamp: 1767225600,
      nonce: 'n-1',
    });
    expect(canonical).toBe(
      [
        'POST',
        '/users/42',
        'a=0&a=1&b=2',
        '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
        '1767225600',
        'n-1',
      ].join('\n'),
    );
    const signature = signRequest('secret', {
      method: 'POST',
      path: '/users/42',
      query: 'a=1',
      timestamp: 1,
      nonce: 'n',
    });
    expect(signature).toMatch(/^[0-9a-f]{64}$/);
    expect(
      signRequest('other', { method: 'POST', path: '/users/42', query: 'a=1', timestamp: 1, nonce: 'n' }),
    ).not.toBe(signature);
  });

  it('canonicalises a query the same way whatever shape or order it comes in', () => {
    const expected = 'a=1&a=2&b=x%20y&c=%26';
    expect(canonicalQuery('?c=%26&b=x+y&a=2&a=1')).toBe(expected);
    expect(canonicalQuery(new URLSearchParams({ b: 'x y', c: '&', a: '1' }))).toBe('a=1&b=x%20y&c=%26');
    expect(canonicalQuery({ c: '&', a: ['2', '1'], b: 'x y', skipped: undefined })).toBe(expected);
    expect(canonicalQuery(undefined)).toBe('');
  });

  it('refuses a query record holding a lone surrogate with InvalidArgumentError naming the key', () => {
    const request = { method: 'GET', path: '/p', timestamp: 1, nonce: 'n'.repeat(16) };
    for (const [query, key] of [
      [{ q: 'a\ud800' }, '"q"'],
      [{ ok: '1', list: ['x', '\udfff'] }, '"list"'],
      [{ 'k\ud800': 'v' }, '"k\\ud800"'],
    ] as const) {
      const refusal = `Query parameter ${key} holds a lone surrogate, which no URL can carry`;
      expect(() => canonicalQuery(query)).toThrow(InvalidArgumentError);
      expect(() => canonicalQuery(query)).toThrow(new InvalidArgumentError(refusal));
      expect(() => signRequest(current, { ...request, query })).toThrow(InvalidArgumentError);
    }
    // A string or URLSearchParams has it as U+FFFD, as a URL sends it.
    expect(canonicalQuery(new URLSearchParams({ q: 'a\ud800' }))).toBe('q=a%EF%BF%BD');
  });

  it('reads a query string as URLSearchParams does: ??a=1 names the key ?a, not a', () => {
    expect(canonicalQuery('??a=1')).toBe('%3Fa=1');
    expect(canonicalQuery('?a=1')).toBe('a=1');
  });

  it('signs the query the URL sends: ??a=1 and ?a=1 sign differently', () => {
    const headersFor = (url: string) =>
      serviceAuthHeaders(
        { serviceId: 'bookings', secret: current },
        { method: 'GET', url, timestamp: 1767225600, nonce: 'n'.repeat(20) },
      );
    expect(headersFor('https://users.example/users??a=1')['X-Signature']).not.toBe(
      headersFor('https://users.example/users?a=1')['X-Signature'],
    );
  });

  it('builds the four headers, with a fresh nonce each time', () => {
    const sign = createServiceSigner({ serviceId: 'bookings', secret: current });
    const first = sign({ method: 'GET', url: 'https://users.example/users/1' });
    const second = sign({ method: 'GET', url: 'https://users.example/users/1' });
    expect(Object.keys(first)).toEqual(['X-Service-Id', 'X-Timestamp', 'X-Nonce', 'X-Signature']);
    expect(first['X-Service-Id']).toBe('bookings');
    expect(first['X-Nonce']).not.toBe(second['X-Nonce']);
    expect(Math.abs(Number(first['X-Timestamp']) - Date.now() / 1000)).toBeLessThan(5);
  });

  it('refuses at construction a secret the verifier would refuse (or none), and a malformed service id', () => {
    const refusals: [unknown, string][] = [
      [undefined, 'secret is undefined (an unset environment variable?)'],
      ['', 'secret must be a string of at least 32 characters besides whitespace'],
      ['short', 'secret must be a string of at least 32 characters besides whitespace'],
      [`short${' '.repeat(40)}`, 'secret must be a string of at least 32 characters besides whitespace'],
    ];
    for (const [secret, problem] of refusals) {
      expect(() => createServiceSigner({ serviceId: 'bookings', secret: secret as string })).toThrow(
        new InvalidOptionsError('createServiceSigner', [problem]),
      );
    }
    expect(() => createServiceSigner({ serviceId: 'a\nb', secret: current })).toThrow(
      new InvalidOptionsError('createServiceSigner', ['serviceId "a\\nb" is invalid']),
    );
  });
});

describe('ServiceRequestVerifier', () => {
  it('accepts a signed request and names the calling service', async () => {
    const principal = await verifier().verify(signed());
    expect(principal).toMatchObject({
      id: 'bookings',
      isM2M: true,
      authMethod: 'service',
      scopes: ['users/read'],
    });
  });

  it('accepts the previous secret during a rotation, and no other', async () => {
    await expect(verifier().verify(signed({ secret: previous }))).resolves.toBeDefined();
    expect(await reasonOf(verifier().verify(signed({ secret: 'x'.repeat(40) })))).toBe('bad_signature');
  });

  it('stores the nonce under NONCE# until the widest tolerance has passed, and rejects its replay', async () => {
    const nonce = randomUUID();
    const request = signed({ nonce });
    await verifier().verify(request);
    const item = await documentClient.send(
      new GetCommand({
        TableName: testTableNames.toolkit,
        Key: { pk: `NONCE#bookings#${nonce}`, sk: 'NONCE' },
      }),
    );
    // 3600 s is the widest toleranceSec, whatever this verifier's (300 s) is.
    expect(item.Item?.expiresAt).toBe(Number(request.headers['x-timestamp']) + 3601);
    expect(await reasonOf(verifier().verify(request))).toBe('replayed');
  });

  it('rejects a replay after a deploy raises toleranceSec, up to the widest tolerance', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const signedAt = Date.now();
    const request = signed();
    await verifier().verify(request);
    // The next deploy (or an instance running beside this one) accepts timestamps up to an hour away.
    const wider = new ServiceRequestVerifier({
      services: { bookings: { current, previous } },
      nonceStore,
      toleranceSec: 3600,
    });
    for (const laterSec of [301, 400, 3600]) {
      vi.setSystemTime(signedAt + laterSec * 1000);
      expect(await reasonOf(wider.verify(request))).toBe('replayed');
    }
    vi.setSystemTime(signedAt + 3601 * 1000);
    expect(await reasonOf(wider.verify(request))).toBe('timestamp_skew');
  });

  it('lets exactly one of ten concurrent deliveries of one request through', async () => {
    const request = signed();
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => verifier().verify(request)));
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
  });

  it('rejects a timestamp more than 300 s away, either way', async () => {
    // A frozen clock: no second may tick between signing and checking at the window's very edge.
    vi.useFakeTimers({ toFake: ['Date'] });
    const now = Math.floor(Date.now() / 1000);
    expect(await reasonOf(verifier().verify(signed({ timestamp: now - 301 })))).toBe('timestamp_skew');
    expect(await reasonOf(verifier().verify(signed({ timestamp: now + 301 })))).toBe('timestamp_skew');
    await expect(verifier().verify(signed({ timestamp: now - 300 }))).resolves.toBeDefined();
    await expect(verifier().verify(signed({ timestamp: now + 300 }))).resolves.toBeDefined();
  });

  it('rejects a body changed after signing', async () => {
    const request = signed();
    expect(await reasonOf(verifier().verify({ ...request, body: Buffer.from('{"x":2}') }))).toBe(
      'bad_signature',
    );
  });

  it('rejects a changed path, method or query', async () => {
    const request = signed();
    expect(await reasonOf(verifier().verify({ ...request, path: '/users/43' }))).toBe('bad_signature');
    expect(await reasonOf(verifier().verify({ ...request, method: 'PUT' }))).toBe('bad_signature');
    expect(await reasonOf(verifier().verify({ ...request, rawQueryString: 'a=1' }))).toBe('bad_signature');
  });

  it('keeps a ? that starts the raw query in the first key, so ??a=1 is not ?a=1', async () => {
    const request = signed({ method: 'GET', url: '/users/42?a=1', body: '' });
    expect(await reasonOf(verifier().verify({ ...request, rawQueryString: '?a=1' }))).toBe('bad_signature');
    const signedWithQuestionMark = signed({ method: 'GET', url: '/users/42??a=1', body: '' });
    expect(signedWithQuestionMark.rawQueryString).toBe('?a=1');
    await expect(verifier().verify(signedWithQuestionMark)).resolves.toMatchObject({ id: 'bookings' });
  });

  it('rejects an unknown service id', async () => {
    const request = signed();
    const headers = { ...request.headers, 'x-service-id': 'payments' };
    expect(await reasonOf(verifier().verify({ ...request, headers }))).toBe('unknown_service');
  });

  it.each([
    ['a missing signature', { 'x-signature': undefined }],
    ['a non-hex signature', { 'x-signature': 'z'.repeat(64) }],
    ['a non-numeric timestamp', { 'x-timestamp': '12:00' }],
    ['a short nonce', { 'x-nonce': 'abc' }],
    ['a nonce with a #', { 'x-nonce': 'aaaaaaaaaaaaaaaa#b' }],
  ])('rejects %s as malformed', async (_name, change) => {
    const request = signed();
    expect(
      await reasonOf(verifier().verify({ ...request, headers: { ...request.headers, ...change } })),
    ).toBe('malformed');
  });

  it('claims no nonce for a request with a bad signature', async () => {
    const claim = vi.fn(async () => true);
    expect(await reasonOf(verifier({ claim }).verify(signed({ secret: 'x'.repeat(40) })))).toBe(
      'bad_signature',
    );
    expect(claim).not.toHaveBeenCalled();
  });

  it('refuses (503) rather than accepts when the nonce store is unavailable', async () => {
    const failing: NonceStore = { claim: async () => Promise.reject(new Error('unreachable')) };
    const error = await verifier(failing)
      .verify(signed())
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
  });

  it('treats a nonce whose item outlived its expiry as new', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const nonce = randomUUID();
    const stamp = Math.floor(Date.now() / 1000);
    expect(await nonceStore.claim(`bookings#${nonce}`, stamp + 1, Date.now())).toBe(true);
    expect(await nonceStore.claim(`bookings#${nonce}`, stamp + 400, Date.now())).toBe(false);
    vi.setSystemTime(Date.now() + 2000);
    expect(await nonceStore.claim(`bookings#${nonce}`, stamp + 400, Date.now())).toBe(true);
  });

  it('refuses scopes given as one string, which a scope guard would match by substring', () => {
    expect(
      () =>
        new ServiceRequestVerifier({
          services: { bookings: { current, scopes: 'users/read' as never } },
          nonceStore,
        }),
    ).toThrow(
      new InvalidOptionsError('ServiceRequestVerifier', [
        'bookings: scopes must be an array of scope names (got "users/read")',
      ]),
    );
    const source = async () => ({ current });
    expect(
      () => new ServiceRequestVerifier({ services: { bookings: { source, scopes: [''] } }, nonceStore }),
    ).toThrow(
      new InvalidOptionsError('ServiceRequestVerifier', [
        'bookings: scopes entries must be non-empty scope names (got "")',
      ]),
    );
  });

  it('rejects invalid options, listing each problem', () => {
    let error: unknown;
    try {
      new ServiceRequestVerifier({
        services: { 'bad id!': { current: 'short' } },
        nonceStore: undefined as never,
        toleranceSec: 0,
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).problems).toHaveLength(4);
    expect(() => new ServiceRequestVerifier({ services: {}, nonceStore })).toThrow(/at least one caller/);
  });

  it('refuses a tolerance that is not a whole number of seconds 1..3600, a numeric string included', () => {
    const services = { bookings: { current } };
    for (const [toleranceSec, shown] of [
      [0.5, '0.5'],
      [3600.5, '3600.5'],
      ['300', '"300"'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
    ]) {
      expect(
        () => new ServiceRequestVerifier({ services, nonceStore, toleranceSec: toleranceSec as number }),
      ).toThrow(
        new InvalidOptionsError('ServiceRequestVerifier', [
          `toleranceSec must be an integer 1..3600 (got ${shown})`,
        ]),
      );
    }
    expect(new ServiceRequestVerifier({ services, nonceStore, toleranceSec: 3600 })).toBeInstanceOf(
      ServiceRequestVerifier,
    );
  });

  it('refuses a service given as null with InvalidOptionsError', () => {
    expect(() => new ServiceRequestVerifier({ services: { bookings: null as never }, nonceStore })).toThrow(
      new InvalidOptionsError('ServiceRequestVerifier', [
        'bookings: must be { current, previous } secrets or a { source }',
      ]),
    );
  });

  it('refuses fixed secrets of whitespace, or short ones padded with it, at construction', () => {
    for (const weak of [{ current: ' '.repeat(40) }, { current, previous: `short${'\t'.repeat(40)}` }]) {
      expect(() => new ServiceRequestVerifier({ services: { bookings: weak }, nonceStore })).toThrow(
        /bookings: secrets must hold at least 32 characters besides whitespace/,
      );
    }
  });

  it('knows a signed request by any of its headers', () => {
    expect(ServiceRequestVerifier.isSigned({ 'x-nonce': 'n' })).toBe(true);
    expect(ServiceRequestVerifier.isSigned({ authorization: 'Bearer x' })).toBe(false);
  });
});

describe('signed paths with percent-encoding', () => {
  const encodedPaths = ['/users/caf%C3%A9', '/users/a%20b', '/a%2Fb', '/50%25'];
  /** A v2 event as an HTTP API delivers a request sent to `path` (rawPath decoded) or a Function URL (as sent). */
  const deliveries = (path: string): [kind: string, event: APIGatewayProxyEventV2][] => [
    ['an HTTP API event', v2Event(decodeURIComponent(path), 'abc123.execute-api.us-east-1.amazonaws.com')],
    ['a Function URL event', v2Event(path, 'abcdefghij0123456789abcdefghij01.lambda-url.us-east-1.on.aws')],
  ];
  function v2Event(rawPath: string, domainName: string): APIGatewayProxyEventV2 {
    return {
      version: '2.0',
      routeKey: '$default',
      rawPath,
      rawQueryString: '',
      headers: {},
      isBase64Encoded: false,
      requestContext: {
        domainName,
        domainPrefix: domainName.split('.')[0],
        http: {
          method: 'GET',
          path: rawPath,
          protocol: 'HTTP/1.1',
          sourceIp: '192.0.2.1',
          userAgent: 'test',
        },
      } as APIGatewayProxyEventV2['requestContext'],
    };
  }
  /** A request signed for `url`, received as `event` delivers it. */
  const receivedAs = (url: string, event: APIGatewayProxyEventV2): IncomingSignedRequest => ({
    ...signed({ method: 'GET', url, body: '' }),
    path: signedPathOf(event) ?? '',
  });

  it('signs the decoded path, whichever way the URL spells it', () => {
    const signatureFor = (url: string) =>
      serviceAuthHeaders(
        { serviceId: 'bookings', secret: current },
        { method: 'GET', url, timestamp: 1767225600, nonce: 'n'.repeat(20) },
      )['X-Signature'];
    const decoded = signRequest(current, {
      method: 'GET',
      path: '/users/café',
      timestamp: 1767225600,
      nonce: 'n'.repeat(20),
    });
    expect(signatureFor('https://users.example/users/caf%C3%A9')).toBe(decoded);
    expect(signatureFor('https://users.example/users/café')).toBe(decoded);
  });

  it.each(encodedPaths)('%s verifies as an HTTP API and as a Function URL deliver it', async (path) => {
    for (const [kind, event] of deliveries(path)) {
      await expect(verifier().verify(receivedAs(path, event)), kind).resolves.toMatchObject({
        id: 'bookings',
      });
    }
  });

  // Each signed path decodes to the other: checked against the decoded path and the path as received, a
  // signature for the resource `a%41` passed at the resource `aA`, and one for `a%2Fb` at `a/b`.
  it.each([
    ['/webhooks/a%2541', '/webhooks/a%41'],
    ['/webhooks/a%252Fb', '/webhooks/a%2Fb'],
    ['/webhooks/aA', '/webhooks/a%2541'],
  ])('a signature for %s does not verify at %s', async (signedUrl, otherUrl) => {
    for (const [kind, event] of deliveries(otherUrl)) {
      expect(await reasonOf(verifier().verify(receivedAs(signedUrl, event))), kind).toBe('bad_signature');
    }
  });

  it('a path decoded once is compared as it is, never decoded again', async () => {
    // What a Function URL event's `/webhooks/a%2541` becomes: the id `a%41`, not `aA`.
    const request = signed({ method: 'GET', url: '/webhooks/aA', body: '' });
    expect(await reasonOf(verifier().verify({ ...request, path: '/webhooks/a%41' }))).toBe('bad_signature');
  });

  it.each([
    ['/users/a', '/users/b'],
    ['/users/a%20b', '/users/a+b'],
    ['/users/caf%C3%A9', '/users/cafe'],
  ])('a signature for %s does not verify for %s', async (signedUrl, otherUrl) => {
    for (const [kind, event] of deliveries(otherUrl)) {
      expect(await reasonOf(verifier().verify(receivedAs(signedUrl, event))), kind).toBe('bad_signature');
    }
  });

  it('a signature over the path as sent, as signers made before paths were signed decoded, fails', async () => {
    const timestamp = Math.floor(Date.now() / 1000);
    const nonce = randomUUID();
    const path = '/users/caf%C3%A9';
    const request: IncomingSignedRequest = {
      method: 'GET',
      path: '/users/café',
      rawQueryString: '',
      body: Buffer.alloc(0),
      headers: {
        'x-service-id': 'bookings',
        'x-timestamp': String(timestamp),
        'x-nonce': nonce,
        'x-signature': signRequest(current, { method: 'GET', path, timestamp, nonce }),
      },
    };
    expect(await reasonOf(verifier().verify(request))).toBe('bad_signature');
  });
});

describe('ServiceRequestVerifier with secrets read at run time', () => {
  const secretsManager = mockClient(SecretsManagerClient);
  const secretArn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:bookings-signing';
  /** The secret as the rotation function keeps it: one JSON value with the current and previous secrets. */
  let stored: string;
  const rotate = (next: string) => {
    stored = JSON.stringify({ current: next, previous: (JSON.parse(stored) as { current: string }).current });
  };

  function rotatingVerifier(store = new SecretStore({ refreshOnMismatchSec: 30 })): ServiceRequestVerifier {
    return new ServiceRequestVerifier({
      services: {
        bookings: {
          source: (refresh) => store.getRotatingSecret(secretArn, { refresh }),
          scopes: ['users/read'],
        },
      },
      nonceStore,
    });
  }

  beforeEach(() => {
    stored = JSON.stringify({ current });
    secretsManager.reset();
    secretsManager.on(GetSecretValueCommand, { SecretId: secretArn }).callsFake(async () => ({
      SecretString: stored,
    }));
  });

  const fetches = () => secretsManager.commandCalls(GetSecretValueCommand).length;

  it('reads the secret once and serves later requests from the cache', async () => {
    const verifier = rotatingVerifier();
    expect(await verifier.verify(signed())).toMatchObject({ id: 'bookings', scopes: ['users/read'] });
    await verifier.verify(signed());
    expect(fetches()).toBe(1);
  });

  it('follows a rotation without a deploy: the new secret is read again on its first mismatch', async () => {
    const verifier = rotatingVerifier();
    await verifier.verify(signed());
    rotate('n'.repeat(40));
    // Callers that already moved to the new secret get through; the re-read happens once.
    await expect(verifier.verify(signed({ secret: 'n'.repeat(40) }))).resolves.toMatchObject({
      id: 'bookings',
    });
    expect(fetches()).toBe(2);
    // Callers still on the outgoing secret get through as well, while it is the previous one.
    await expect(verifier.verify(signed({ secret: current }))).resolves.toBeDefined();
    expect(fetches()).toBe(2);
  });

  it('refuses a forged signature, and forged requests cannot drive Secrets Manager calls', async () => {
    const verifier = rotatingVerifier();
    for (let index = 0; index < 20; index += 1) {
      expect(await reasonOf(verifier.verify(signed({ secret: 'f'.repeat(40) })))).toBe('bad_signature');
    }
    // The first read, and one refresh per refreshOnMismatchSec however many forgeries follow.
    expect(fetches()).toBe(2);
  });

  it('answers 503 when the secret cannot be read or is unusable, and claims no nonce', async () => {
    const claims: string[] = [];
    const counting: NonceStore = {
      claim: async (key, expiresAtSec, nowMs) => {
        claims.push(key);
        return nonceStore.claim(key, expiresAtSec, nowMs);
      },
    };
    const failing = new ServiceRequestVerifier({
      services: { bookings: { source: async () => Promise.reject(new Error('AccessDenied')) } },
      nonceStore: counting,
    });
    await expect(failing.verify(signed())).rejects.toBeInstanceOf(ServiceUnavailableError);
    const short = new ServiceRequestVerifier({
      services: { bookings: { source: async () => ({ current: 'too-short' }) } },
      nonceStore: counting,
    });
    await expect(short.verify(signed())).rejects.toBeInstanceOf(ServiceUnavailableError);
    const blank = new ServiceRequestVerifier({
      services: { bookings: { source: async () => ({ current: ' '.repeat(32) }) } },
      nonceStore: counting,
    });
    await expect(blank.verify(signed({ secret: ' '.repeat(32) }))).rejects.toBeInstanceOf(
      ServiceUnavailableError,
    );
    stored = JSON.stringify({ value: current });
    await expect(rotatingVerifier().verify(signed())).rejects.toBeInstanceOf(ServiceUnavailableError);
    expect(claims).toEqual([]);
  });

  it('rejects a source that is not a function at construction', () => {
    expect(
      () =>
        new ServiceRequestVerifier({
          services: { bookings: { source: 'arn:aws:secretsmanager:…' as never } },
          nonceStore,
        }),
    ).toThrow(/bookings: source must be a function/);
  });
});
