// JWT verification throughput next to aws-jwt-verify, jose and the node:crypto floor; authenticate() overhead next to bare Middy.
import { generateKeyPairSync, hash, randomUUID, sign, verify } from 'node:crypto';
import middy from '@middy/core';
import { JwtVerifier as AwsJwtVerifier } from 'aws-jwt-verify';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import { JwtVerifier } from '../../middleware/auth/jwt-verifier.js';
import { authenticate } from '../../middleware/auth/middy.js';
import { lambdaHandler } from '../../middleware/lambda-handler.js';
import type { BenchSuite, Measurement } from './harness.js';

const tokenCount = 1000;
const rounds = Number(process.env.BENCH_AUTH_ROUNDS ?? 7);
const warmPasses = 20;
const joseTokens = 200;
const issuer = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench0001';
const clientId = '3q7n0benchclient0example';

interface Fixture {
  readonly jwk: JWK;
  readonly publicKey: ReturnType<typeof generateKeyPairSync>['publicKey'];
  readonly tokens: readonly string[];
  /** Not among `tokens`: used to import keys before timing, so only verification is timed. */
  readonly warmupToken: string;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** 1,000 distinct RS256 tokens shaped like Cognito access tokens (about 780 bytes each). */
function fixture(): Fixture {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'bench-key-1';
  const jwk: JWK = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const now = Math.floor(Date.now() / 1000);
  const header = b64({ kid, alg: 'RS256' });
  const mint = (index: number) => {
    const payload = b64({
      sub: randomUUID(),
      'cognito:groups': ['admin'],
      iss: issuer,
      version: 2,
      client_id: clientId,
      origin_jti: randomUUID(),
      event_id: randomUUID(),
      token_use: 'access',
      scope: 'aws.cognito.signin.user.admin openid email',
      auth_time: now,
      exp: now + 3600,
      iat: now,
      jti: randomUUID(),
      username: `user-${index}`,
    });
    const input = `${header}.${payload}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  };
  return {
    jwk,
    publicKey,
    tokens: Array.from({ length: tokenCount }, (_, index) => mint(index)),
    warmupToken: mint(-1),
  };
}

function ourVerifier(jwk: JWK): JwtVerifier {
  return new JwtVerifier({
    issuers: [{ issuer, tokenUse: 'access', clientId, jwks: { keys: [jwk] }, jwksUri: null }],
  });
}

function awsVerifier(jwk: JWK) {
  const verifier = AwsJwtVerifier.create({
    issuer,
    audience: null,
    jwksUri: `${issuer}/.well-known/jwks.json`,
  });
  verifier.cacheJwks({ keys: [jwk as never] });
  return verifier;
}

/**
 * aws-jwt-verify behind the cache JwtVerifier keeps (middleware/auth/token-cache.ts): a Map from the
 * token's SHA-256 (binary string) to its claims, used until the token's `exp`. It shows how much of the
 * warm figure is the cache itself rather than the verifier behind it.
 */
function cachedAwsVerifier(aws: ReturnType<typeof awsVerifier>) {
  const cache = new Map<string, { readonly claims: unknown; readonly validUntilMs: number }>();
  return (token: string): unknown => {
    const key = hash('sha256', token, 'binary');
    const hit = cache.get(key);
    if (hit !== undefined && hit.validUntilMs > Date.now()) return hit.claims;
    const claims = aws.verifySync(token);
    cache.set(key, { claims, validUntilMs: (claims.exp ?? 0) * 1000 });
    return claims;
  };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

type Contender<T> = (batch: readonly T[]) => Promise<void> | void;

/**
 * Runs the contenders batch by batch, alternating between them, and returns each one's operations
 * per second: on a shared machine, load that comes and goes then weighs on all of them alike.
 */
async function interleaved<T, K extends string>(
  items: readonly T[],
  contenders: Record<K, Contender<T>>,
  passes = 1,
  batchSize = 100,
): Promise<Record<K, number>> {
  const names = Object.keys(contenders) as K[];
  const elapsed = Object.fromEntries(names.map((name) => [name, 0])) as Record<K, number>;
  let turn = 0;
  for (let pass = 0; pass < passes; pass += 1) {
    for (let start = 0; start < items.length; start += batchSize) {
      const batch = items.slice(start, start + batchSize);
      // The order rotates every batch, so no contender always runs right after the same other one.
      turn += 1;
      for (const name of [...names.slice(turn % names.length), ...names.slice(0, turn % names.length)]) {
        const started = performance.now();
        await contenders[name](batch);
        elapsed[name] += performance.now() - started;
      }
    }
  }
  const operations = items.length * passes;
  return Object.fromEntries(
    (Object.keys(elapsed) as K[]).map((name) => [name, operations / (elapsed[name] / 1000)]),
  ) as Record<K, number>;
}

const lambdaContext = { awsRequestId: 'bench', getRemainingTimeInMillis: () => 10_000 } as Context;

function eventWith(token: string): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: 'GET /bookings',
    rawPath: '/bookings',
    rawQueryString: '',
    headers: { authorization: `Bearer ${token}`, host: 'api.example', 'user-agent': 'bench' },
    isBase64Encoded: false,
    requestContext: {
      requestId: 'bench',
      http: {
        method: 'GET',
        path: '/bookings',
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: 'bench',
      },
    } as APIGatewayProxyEventV2['requestContext'],
  };
}

const suite: BenchSuite = {
  name: 'auth: JWT verification and authenticate()',
  async run() {
    const { jwk, publicKey, tokens, warmupToken } = fixture();
    const samples = {
      ours: [] as number[],
      warm: [] as number[],
      /** aws-jwt-verify's full verification, measured in the same passes as `warm`. */
      warmAws: [] as number[],
      warmAwsCached: [] as number[],
      aws: [] as number[],
      floor: [] as number[],
      jose: [] as number[],
    };
    const overhead = { bare: [] as number[], warm: [] as number[], cold: [] as number[] };
    const events = tokens.map(eventWith);
    const bare = middy<APIGatewayProxyEventV2>().handler(async () => ({ statusCode: 200, body: 'ok' }));
    const local = createLocalJWKSet({ keys: [jwk] });

    // Each round interleaves the contenders batch by batch; the median round is reported.
    for (let round = 0; round < rounds; round += 1) {
      // Cold claims cache: a new verifier per round, its key imported on an unrelated token first.
      const ours = ourVerifier(jwk);
      await ours.verify(warmupToken);
      const aws = awsVerifier(jwk);
      aws.verifySync(warmupToken);
      const cold = await interleaved(tokens, {
        ours: async (batch) => {
          for (const token of batch) await ours.verify(token);
        },
        aws: (batch) => {
          for (const token of batch) aws.verifySync(token);
        },
        floor: (batch) => {
          for (const token of batch) {
            const dot = token.lastIndexOf('.');
            const input = Buffer.from(token.slice(0, dot));
            if (!verify('sha256', input, publicKey, Buffer.from(token.slice(dot + 1), 'base64url'))) {
              throw new Error('floor: bad signature');
            }
          }
        },
      });
      samples.ours.push(cold.ours);
      samples.aws.push(cold.aws);
      samples.floor.push(cold.floor);
      // The same tokens again: every one is now in the claims cache, so each call is a cache hit, set
      // against aws-jwt-verify verifying each token in full (it keeps no claims cache), and against
      // aws-jwt-verify behind the same cache (filled first, untimed). Whole passes alternate (a warm
      // pass is about 1.5 ms), so the baseline's crypto does not evict the cache lines being measured.
      const awsCached = cachedAwsVerifier(aws);
      for (const token of tokens) awsCached(token);
      const warm = await interleaved(
        tokens,
        {
          warm: async (batch) => {
            for (const token of batch) await ours.verify(token);
          },
          aws: (batch) => {
            for (const token of batch) aws.verifySync(token);
          },
          awsCached: (batch) => {
            for (const token of batch) awsCached(token);
          },
        },
        warmPasses,
        tokenCount,
      );
      samples.warm.push(warm.warm);
      samples.warmAws.push(warm.aws);
      samples.warmAwsCached.push(warm.awsCached);
      samples.jose.push(
        (
          await interleaved(tokens.slice(0, joseTokens), {
            jose: async (batch) => {
              for (const token of batch) await jwtVerify(token, local, { issuer });
            },
          })
        ).jose,
      );

      // Per request: the bare handler next to authenticate() on first-seen tokens, then on repeated ones.
      const verifier = ourVerifier(jwk);
      await verifier.verify(warmupToken);
      const guarded = lambdaHandler(
        middy<APIGatewayProxyEventV2>()
          .use(authenticate({ jwt: verifier }))
          .handler(async (_event, { principal }) => ({ statusCode: 200, body: principal.id })),
      );
      const requests = {
        bare: async (batch: readonly APIGatewayProxyEventV2[]) => {
          for (const event of batch) await bare(event, lambdaContext);
        },
        guarded: async (batch: readonly APIGatewayProxyEventV2[]) => {
          for (const event of batch) await guarded(event, lambdaContext);
        },
      };
      const first = await interleaved(events, requests);
      const repeated = await interleaved(events, requests, warmPasses, tokenCount);
      overhead.cold.push(1e6 / first.guarded);
      overhead.bare.push(1e6 / repeated.bare);
      overhead.warm.push(1e6 / repeated.guarded);
    }

    const aws = { name: 'aws-jwt-verify JwtVerifier.verifySync', value: median(samples.aws) };
    const floor = { name: 'node:crypto verify (floor)', value: median(samples.floor) };
    const bareMiddy = { name: 'bare middy handler', value: median(overhead.bare) };
    const perSecond = 'verifications/s';
    return [
      {
        id: 'auth.jwt.cold',
        what: `JwtVerifier, ${tokenCount} distinct RS256 Cognito access tokens (cold claims cache)`,
        value: median(samples.ours),
        unit: perSecond,
        baseline: aws,
        target: { ratio: 1, better: 'higher' },
      },
      {
        id: 'auth.jwt.warm',
        what: `JwtVerifier, the same ${tokenCount} tokens again: a claims-cache hit each, against a full verification each`,
        value: median(samples.warm),
        unit: perSecond,
        baseline: {
          name: 'aws-jwt-verify verifySync (no claims cache), same passes',
          value: median(samples.warmAws),
        },
        target: { ratio: 20, better: 'higher' },
      },
      {
        id: 'auth.jwt.warm-vs-cached-aws',
        what: `JwtVerifier, the same ${tokenCount} tokens again, against aws-jwt-verify behind the same SHA-256 → claims Map cache`,
        value: median(samples.warm),
        unit: perSecond,
        baseline: {
          name: 'aws-jwt-verify + SHA-256 → claims Map, same passes',
          value: median(samples.warmAwsCached),
        },
      },
      {
        id: 'auth.jwt.cold-vs-floor',
        what: 'JwtVerifier cold, as a share of bare signature verification',
        value: median(samples.ours),
        unit: perSecond,
        baseline: floor,
      },
      {
        id: 'auth.jwt.aws-vs-floor',
        what: 'aws-jwt-verify, as a share of bare signature verification',
        value: aws.value,
        unit: perSecond,
        baseline: floor,
      },
      {
        id: 'auth.jwt.jose',
        what: `jose jwtVerify with a local JWKS (WebCrypto), ${joseTokens} tokens`,
        value: median(samples.jose),
        unit: perSecond,
        baseline: aws,
      },
      {
        id: 'auth.middleware.cold',
        what: 'authenticate() + handler, first-seen token, per request',
        value: median(overhead.cold),
        unit: 'µs',
        baseline: bareMiddy,
      },
      {
        id: 'auth.middleware.warm',
        what: 'authenticate() + handler, repeated token, per request',
        value: median(overhead.warm),
        unit: 'µs',
        baseline: bareMiddy,
      },
    ] satisfies Measurement[];
  },
};

export default suite;
