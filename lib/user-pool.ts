// The Cognito user pool: human sign-in with groups, an M2M client (client credentials) and the API's scopes.
import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';

export interface BulwarkUserPoolProps {
  /**
   * OAuth scopes the API checks, each `<resource server>/<scope>` (e.g. `bookings/write`): one resource
   * server is created per prefix, and both app clients may request every scope.
   */
  readonly scopes: readonly string[];
  /**
   * The scopes the M2M client may request, each one of `scopes`: give each integration no more than it
   * calls (the sample's own service calls are signed requests and need none).
   * @default every scope in `scopes`
   */
  readonly m2mScopes?: readonly string[];
  /** Groups to create; they arrive in `cognito:groups` and are the principal's roles (e.g. `admin`). */
  readonly groups: readonly string[];
  /**
   * Prefix of the Cognito hosted domain that serves `/oauth2/token`; unique per region across AWS.
   * It may contain tokens (e.g. the account id).
   */
  readonly domainPrefix: string;
  /**
   * Where the hosted sign-in may send a human user back with an authorization code: https URLs, or
   * http only for localhost (Cognito's own rule).
   * @default ['http://localhost:3000/callback']
   */
  readonly callbackUrls?: readonly string[];
  /**
   * How Cognito sends its own emails (temporary passwords, verification and recovery codes), e.g.
   * `cognito.UserPoolEmail.withSES(...)`.
   * @default - Cognito's built-in sender (a daily quota of about 50 emails, from no-reply@verificationemail.com)
   */
  readonly email?: cognito.UserPoolEmail;
  /**
   * Whether people must use a second factor (TOTP; SMS is never offered). M2M clients are unaffected.
   * @default cognito.Mfa.REQUIRED
   */
  readonly mfa?: cognito.Mfa;
  /**
   * How long access tokens (human and M2M) stay valid.
   * @default Duration.hours(1)
   */
  readonly accessTokenValidity?: Duration;
  /**
   * How long a person's refresh token keeps their session going without signing in again (password and
   * TOTP), each refresh rotating it. Admin accounts sign in through the same client, so this is also how long
   * a stolen refresh token of an administrator works: 12 hours is NIST SP 800-63B-3's limit between
   * re-authentications at AAL2 (multi-factor), a working day, instead of Cognito's 30 days.
   * @default Duration.hours(12)
   */
  readonly refreshTokenValidity?: Duration;
  /**
   * Sign-in treats `Ada@Example.org` and `ada@example.org` as one user. Cognito fixes this when it creates
   * a pool and refuses every later change to it (`Updates are not allowed for property -
   * UsernameConfiguration`), which fails and rolls back the whole deploy. Pass `false` for a pool created
   * without it (by a Bulwark stack before this setting): the setting is then left out of the template, and
   * the pool stays as it was created, case-sensitive.
   * @default true
   */
  readonly signInCaseInsensitive?: boolean;
  /**
   * What happens to the pool (and its users) when it leaves the stack; RETAIN also turns on
   * Cognito's deletion protection. Any other policy leaves it off: with RETAIN_ON_UPDATE_OR_DELETE, the
   * rollback of a failed create could not delete a protected pool, and the rollback itself would fail.
   * Its groups, app clients and resource servers are kept whenever it is (RETAIN_ON_UPDATE_OR_DELETE), and
   * deleted with it under DESTROY.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/** The default callback URL of the human client: a local app, for development only. */
export const defaultCallbackUrls = ['http://localhost:3000/callback'] as const;

/**
 * Whether a callback URL points at the machine it is opened on: `localhost` and its subdomains (with or
 * without the final dot), the whole 127.0.0.0/8, 0.0.0.0, `::1`, `::` and IPv4-mapped loopback.
 */
export function isLocalCallbackUrl(url: string): boolean {
  if (!URL.canParse(url)) return false;
  // The URL parser has already put an IPv4 host in dotted decimal (`0x7f.1` is 127.0.0.1) and an IPv6 host
  // in its shortest form (`::ffff:127.0.0.1` is `[::ffff:7f00:1]`).
  const host = new URL(url).hostname.replace(/\.$/, '');
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\.\d+\.\d+\.\d+$/.test(host) ||
    host === '0.0.0.0' ||
    ['[::1]', '[::]'].includes(host) ||
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host) ||
    host === '[::ffff:0:0]'
  );
}

/**
 * Every problem Cognito would have with a callback URL list: empty, not a URL, or http on any host but
 * `localhost` (Cognito's API refuses plain http even on 127.0.0.1 and [::1]).
 */
export function callbackUrlProblems(urls: readonly string[]): string[] {
  if (urls.length === 0) return ['callbackUrls must name at least one URL'];
  return urls.flatMap((url) => {
    if (!URL.canParse(url)) return [`callback URL ${JSON.stringify(url)} is not a URL`];
    const { protocol, hostname } = new URL(url);
    return protocol === 'https:' || (protocol === 'http:' && hostname === 'localhost')
      ? []
      : [`callback URL ${JSON.stringify(url)} must be https (http only for localhost)`];
  });
}

/** Splits `bookings/read` into the resource server `bookings` and its scope `read`. */
function scopesByServer(scopes: readonly string[]): Map<string, string[]> {
  const servers = new Map<string, string[]>();
  for (const scope of new Set(scopes)) {
    const slash = scope.lastIndexOf('/');
    if (slash <= 0 || slash === scope.length - 1) {
      throw new Error(
        `Invalid BulwarkUserPool props: scope ${JSON.stringify(scope)} is not <server>/<scope>`,
      );
    }
    const server = scope.slice(0, slash);
    servers.set(server, [...(servers.get(server) ?? []), scope.slice(slash + 1)]);
  }
  return servers;
}

/**
 * A user pool for people (email sign-in, no self sign-up, TOTP MFA, groups) and services (an
 * M2M app client with a generated secret and the client-credentials grant), with a hosted domain for
 * the token endpoint. Both clients' access tokens carry the API's scopes in `scope`.
 *
 * @example
 * const pool = new BulwarkUserPool(this, 'UserPool', {
 *   scopes: ['bookings/read', 'bookings/write'],
 *   groups: ['admin'],
 *   domainPrefix: `bulwark-dev-${Aws.ACCOUNT_ID}`,
 * });
 * fn.addEnvironment('AUTH_ISSUER', pool.issuer);
 */
export class BulwarkUserPool extends Construct {
  /** The created user pool. */
  public readonly userPool: cognito.UserPool;
  /**
   * The app client for people (authorization code, SRP; public: no secret). Cognito accepts a code
   * request without PKCE, so the app must send `code_challenge` itself.
   */
  public readonly humanClient: cognito.UserPoolClient;
  /** The app client for services (client credentials; generated secret; no user sign-in flow). */
  public readonly m2mClient: cognito.UserPoolClient;
  /** The hosted domain. */
  public readonly domain: cognito.UserPoolDomain;
  /** The JWT issuer, `https://cognito-idp.<region>.amazonaws.com/<pool id>`. */
  public readonly issuer: string;
  /** The OAuth token endpoint, `<domain>/oauth2/token`. */
  public readonly tokenUrl: string;

  constructor(scope: Construct, id: string, props: BulwarkUserPoolProps) {
    super(scope, id);
    const callbackUrls = props.callbackUrls ?? defaultCallbackUrls;
    const problems = callbackUrlProblems(callbackUrls);
    if (problems.length > 0) throw new Error(`Invalid BulwarkUserPool props: ${problems.join('; ')}`);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.userPool = new cognito.UserPool(this, 'Pool', {
      // Accounts are created by an administrator; the sample has no public sign-up page.
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      // The email is the username: Ada@Example.org and ada@example.org are one person. Cognito sets this
      // when it creates the pool and refuses to change it, also to `true`: an older pool gets nothing.
      signInCaseSensitive: (props.signInCaseInsensitive ?? true) ? false : undefined,
      autoVerify: { email: true },
      // A changed email (only an administrator can change it: the human client may not write it) takes
      // effect once the new address is verified; until then sign-in and recovery stay on the old one.
      keepOriginal: { email: true },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa: props.mfa ?? cognito.Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
      ...(props.email === undefined ? {} : { email: props.email }),
      removalPolicy,
    });
    // A kept pool stays whole: a role renamed or dropped from the route table leaves its group and every
    // membership, and a deleted stack leaves the pool its groups, clients and scopes. Unlike the pool they are
    // deleted by the rollback of the deploy that created them (RetainExceptOnCreate): a group a failed deploy
    // left behind would make the next deploy's create of the same group fail.
    const configurationRemovalPolicy =
      removalPolicy === RemovalPolicy.DESTROY
        ? RemovalPolicy.DESTROY
        : RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE;
    for (const group of new Set(props.groups)) {
      new cognito.CfnUserPoolGroup(this, `Group-${group}`, {
        userPoolId: this.userPool.userPoolId,
        groupName: group,
      }).applyRemovalPolicy(configurationRemovalPolicy);
    }

    const unknownM2mScopes = (props.m2mScopes ?? []).filter((scope) => !props.scopes.includes(scope));
    if (unknownM2mScopes.length > 0) {
      throw new Error(
        `Invalid BulwarkUserPool props: m2mScopes ${unknownM2mScopes.map((scope) => JSON.stringify(scope)).join(', ')} not among the scopes the API checks (${props.scopes.join(', ')})`,
      );
    }
    // Cognito refuses a client-credentials client without a scope.
    if (props.m2mScopes?.length === 0) {
      throw new Error('Invalid BulwarkUserPool props: m2mScopes must name at least one scope');
    }
    // Each API scope by its `<server>/<scope>` name: a resource server's OAuthScope names it by a token.
    const apiScopes = [...scopesByServer(props.scopes)].flatMap(([identifier, scopeNames]) => {
      const server = new cognito.UserPoolResourceServer(this, `ResourceServer-${identifier}`, {
        userPool: this.userPool,
        identifier,
        scopes: scopeNames.map((scopeName) => ({
          scopeName,
          scopeDescription: `${identifier}/${scopeName}`,
        })),
      });
      server.applyRemovalPolicy(configurationRemovalPolicy);
      return scopeNames.map(
        (scopeName) =>
          [
            `${identifier}/${scopeName}`,
            cognito.OAuthScope.resourceServer(server, {
              scopeName,
              scopeDescription: `${identifier}/${scopeName}`,
            }),
          ] as const,
      );
    });
    const oAuthScopes = apiScopes.map(([, scope]) => scope);
    const m2mScopes =
      props.m2mScopes === undefined
        ? oAuthScopes
        : apiScopes.filter(([name]) => props.m2mScopes?.includes(name)).map(([, scope]) => scope);
    const accessTokenValidity = props.accessTokenValidity ?? Duration.hours(1);

    this.humanClient = this.userPool.addClient('HumanClient', {
      generateSecret: false,
      authFlows: { userSrp: true },
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, ...oAuthScopes],
        callbackUrls: [...callbackUrls],
      },
      accessTokenValidity,
      refreshTokenValidity: props.refreshTokenValidity ?? Duration.hours(12),
      // Each refresh returns a new refresh token and retires the one sent, a few seconds later so that two
      // tabs refreshing at once, or a retry after a lost response, do not sign the person out. Refresh then
      // goes through the token endpoint (or GetTokensFromRefreshToken): Cognito refuses REFRESH_TOKEN_AUTH
      // on such a client, and CDK leaves it out of ExplicitAuthFlows.
      refreshTokenRotationGracePeriod: Duration.seconds(10),
      // The email is the username and the only recovery channel, and the sample has no self-service email
      // change: a token of this client (SRP sign-in's carry aws.cognito.signin.user.admin) may update the
      // person's name and nothing else.
      writeAttributes: new cognito.ClientAttributes().withStandardAttributes({ fullname: true }),
      // Same answer for unknown users and wrong passwords: no account enumeration.
      preventUserExistenceErrors: true,
    });
    this.m2mClient = this.userPool.addClient('M2mClient', {
      generateSecret: true,
      // Every flow named and off: CDK then writes ExplicitAuthFlows [ALLOW_REFRESH_TOKEN_AUTH], the one flow
      // Cognito requires in any list. `{}` writes no list, and Cognito then allows SRP and custom sign-in too.
      authFlows: {
        user: false,
        userSrp: false,
        userPassword: false,
        adminUserPassword: false,
        custom: false,
      },
      oAuth: {
        flows: { clientCredentials: true },
        scopes: m2mScopes,
      },
      accessTokenValidity,
      preventUserExistenceErrors: true,
    });
    this.humanClient.applyRemovalPolicy(configurationRemovalPolicy);
    this.m2mClient.applyRemovalPolicy(configurationRemovalPolicy);
    // Deleted with the stack whatever the pool's policy: a kept domain would hold its prefix, and the
    // next stack of that name could not create its own.
    this.domain = this.userPool.addDomain('Domain', {
      cognitoDomain: { domainPrefix: props.domainPrefix },
    });
    // Spelled out: the `iss` claim is exactly this, and the ProviderURL attribute is documented without a scheme.
    this.issuer = `https://cognito-idp.${Stack.of(this).region}.${Aws.URL_SUFFIX}/${this.userPool.userPoolId}`;
    this.tokenUrl = `${this.domain.baseUrl()}/oauth2/token`;
  }
}
