import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../middleware/auth/principal.js';
import {
  clientIpOf,
  isKeyedByPrincipal,
  keyOf,
  type RateLimitRequest,
  rateLimitKeyOf,
} from '../../middleware/rate-limit/client-key.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { testPrincipal } from '../helpers/principals.js';
import { countingClient, tableName, uniquePolicyName } from './helpers.js';

const eventWith = (sourceIp: string | undefined, forwardedFor?: string): APIGatewayProxyEventV2 =>
  ({
    routeKey: 'GET /things',
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    requestContext: { http: { sourceIp } },
  }) as unknown as APIGatewayProxyEventV2;

const direct = { trustedProxyCount: 0, ipv6PrefixLength: 64 };

describe('client keys', () => {
  it('reads the client address from the peer, never from a header it was not told to trust', () => {
    expect(clientIpOf(eventWith('203.0.113.1', '10.0.0.1'), direct)).toBe('203.0.113.1');
    expect(
      clientIpOf(eventWith('203.0.113.1', '10.0.0.1, 198.51.100.7'), { ...direct, trustedProxyCount: 2 }),
    ).toBe('10.0.0.1');
    // More trusted hops than entries: the leftmost address is the best there is.
    expect(clientIpOf(eventWith('203.0.113.1', '198.51.100.7'), { ...direct, trustedProxyCount: 5 })).toBe(
      '198.51.100.7',
    );
    expect(clientIpOf(eventWith(undefined, '198.51.100.8'), { ...direct, trustedProxyCount: 1 })).toBe(
      '198.51.100.8',
    );
    expect(clientIpOf(eventWith(undefined), { ...direct, trustedProxyCount: 1 })).toBe('unknown');
  });

  it("reads a REST API (v1) event's peer and its X-Forwarded-For whatever the header name's case", () => {
    const restApiEvent = {
      headers: { 'X-Forwarded-For': '10.0.0.1, 198.51.100.7' },
      requestContext: { identity: { sourceIp: '203.0.113.1' } },
    } as unknown as APIGatewayProxyEventV2;
    expect(clientIpOf(restApiEvent, direct)).toBe('203.0.113.1');
    expect(clientIpOf(restApiEvent, { ...direct, trustedProxyCount: 2 })).toBe('10.0.0.1');
  });

  it('ignores X-Forwarded-For sent under two spellings, so a client cannot add the one that is read', () => {
    const restApiEvent = (headers: Record<string, string>) =>
      ({
        headers,
        requestContext: { identity: { sourceIp: '130.176.0.1' } },
      }) as unknown as APIGatewayProxyEventV2;
    const behindProxy = { ...direct, trustedProxyCount: 1 };
    expect(clientIpOf(restApiEvent({ 'X-Forwarded-For': '203.0.113.7' }), behindProxy)).toBe('203.0.113.7');
    const spoofs: Record<string, string>[] = [
      { 'X-Forwarded-For': '203.0.113.7', 'x-forwarded-for': '198.51.100.1' },
      { 'X-FORWARDED-FOR': '198.51.100.9', 'X-Forwarded-For': '203.0.113.7' },
    ];
    for (const spoofed of spoofs) {
      // The peer (the trusted proxy) instead: an address the client cannot choose.
      expect(clientIpOf(restApiEvent(spoofed), behindProxy)).toBe('130.176.0.1');
    }
  });

  it('groups IPv6 addresses by the configured prefix', () => {
    expect(clientIpOf(eventWith('2001:db8:aaaa:bbbb:1:2:3:4'), direct)).toBe('2001:db8:aaaa:bbbb::/64');
    expect(clientIpOf(eventWith('2001:db8:aaaa:bbbb:1:2:3:4'), { ...direct, ipv6PrefixLength: 56 })).toBe(
      '2001:db8:aaaa:bb00::/56',
    );
    expect(clientIpOf(eventWith('2001:db8::1'), { ...direct, ipv6PrefixLength: 128 })).toBe(
      '2001:db8::1/128',
    );
  });

  it('builds one key per kind, falling back to the IP for principal fields that are missing', () => {
    const principal = { id: 'u-1', authMethod: 'jwt', clientId: undefined, tenantId: undefined } as Principal;
    const request: RateLimitRequest = { event: eventWith('203.0.113.9'), principal, clientIp: '203.0.113.9' };
    expect(keyOf(['user'], request)).toBe('user:[null,"jwt","person","u-1"]');
    expect(keyOf(['clientId'], request)).toBe('ip:203.0.113.9');
    expect(keyOf(['tenant'], request)).toBe('ip:203.0.113.9');
    expect(keyOf(['apiKey'], request)).toBe('ip:203.0.113.9');
    expect(keyOf(['ip', 'route'], request)).toBe('["ip:203.0.113.9","route:GET /things"]');
    // The same part twice is one part.
    expect(keyOf(['ip', 'tenant'], request)).toBe('ip:203.0.113.9');
  });

  it('names the kinds a key was made of, ip where a principal field fell back to the address', () => {
    const principal = { id: 'u-1', authMethod: 'jwt', clientId: undefined, tenantId: 't-1' } as Principal;
    const event = eventWith('203.0.113.9');
    const known: RateLimitRequest = { event, principal, clientIp: '203.0.113.9' };
    const anonymous: RateLimitRequest = { event, principal: undefined, clientIp: '203.0.113.9' };
    expect(rateLimitKeyOf(['user', 'route'], known)).toEqual({
      key: '["user:[\\"t-1\\",\\"jwt\\",\\"person\\",\\"u-1\\"]","route:GET /things"]',
      kinds: ['user', 'route'],
    });
    expect(rateLimitKeyOf(['tenant', 'clientId'], known).kinds).toEqual(['tenant', 'ip']);
    expect(rateLimitKeyOf(['user'], anonymous)).toEqual({ key: 'ip:203.0.113.9', kinds: ['ip'] });
    expect(rateLimitKeyOf(['ip', 'user', 'route'], anonymous).kinds).toEqual(['ip', 'route']);
  });

  it('tells the kinds read from the principal, which need authentication first, from ip and route', () => {
    for (const kind of ['user', 'clientId', 'apiKey', 'tenant'] as const) {
      expect(isKeyedByPrincipal([kind]), kind).toBe(true);
      expect(isKeyedByPrincipal(['ip', 'route', kind]), kind).toBe(true);
    }
    expect(isKeyedByPrincipal(['ip', 'route'])).toBe(false);
  });

  it("keys a REST API (v1) event's route by method and resource, as v2 writes its routeKey", () => {
    const restApiEvent = (httpMethod: string, resource: string) =>
      ({
        httpMethod,
        resource,
        headers: {},
        requestContext: { identity: {} },
      }) as unknown as APIGatewayProxyEventV2;
    const routeKey = (event: APIGatewayProxyEventV2) =>
      keyOf(['route'], { event, principal: undefined, clientIp: 'unknown' });
    expect(routeKey(restApiEvent('POST', '/users/{id}'))).toBe('route:POST /users/{id}');
    expect(routeKey(restApiEvent('GET', '/users/{id}'))).toBe('route:GET /users/{id}');
  });

  it('never gives a person and a machine with the same id one user budget', () => {
    const person = { id: 'svc-x', isM2M: false, authMethod: 'jwt' } as Principal;
    const machine = { id: 'svc-x', isM2M: true, authMethod: 'jwt', clientId: 'svc-x' } as Principal;
    const of = (principal: Principal) =>
      keyOf(['user'], { event: eventWith('203.0.113.9'), principal, clientIp: '203.0.113.9' });
    expect(of(person)).toBe('user:[null,"jwt","person","svc-x"]');
    expect(of(machine)).toBe('user:[null,"jwt","machine","svc-x"]');
  });

  it('gives each caller its own user budget: the same id in another tenant or of another method is another caller', () => {
    const of = (principal: Partial<Principal>) =>
      keyOf(['user'], {
        event: eventWith('203.0.113.9'),
        principal: testPrincipal(principal),
        clientIp: '203.0.113.9',
      });
    const callers: Partial<Principal>[] = [
      { id: 'alice', tenantId: 'tenant-a', claims: { iss: 'https://idp-a.example' } },
      { id: 'alice', tenantId: 'tenant-b', claims: { iss: 'https://idp-b.example' } },
      { id: 'alice' },
      { id: 'bookings', isM2M: true, authMethod: 'service' },
      { id: 'bookings', isM2M: true, authMethod: 'jwt', clientId: 'bookings' },
      { id: 'bookings', isM2M: true, authMethod: 'apiKey' },
      // Separators inside an id or a tenant cannot rebuild another caller's key.
      { id: 'b:c', tenantId: 'a' },
      { id: 'c', tenantId: 'a:b' },
      { id: 'b#c', tenantId: 'a' },
      { id: 'c', tenantId: 'a#b' },
      { id: '"jwt","person","x', tenantId: 't' },
      { id: 'x', tenantId: 't","jwt","person' },
    ];
    const keys = callers.map(of);
    expect(new Set(keys).size).toBe(callers.length);
    // The same caller is one budget whatever its address or the rest of its token.
    expect(of({ id: 'alice', tenantId: 'tenant-a', scopes: ['bookings/read'] })).toBe(keys[0]);
  });

  it('gives each client its own clientId budget: the same client id in another tenant or of another method is another client', () => {
    const of = (principal: Partial<Principal>) =>
      keyOf(['clientId'], {
        event: eventWith('203.0.113.9'),
        principal: testPrincipal(principal),
        clientIp: '203.0.113.9',
      });
    const machine = { isM2M: true, id: 'svc-1', clientId: 'svc-1' };
    expect(of({ ...machine, tenantId: 'tenant-b' })).toBe('client:["tenant-b","jwt","svc-1"]');
    expect(of({ ...machine, tenantId: 'tenant-c' })).toBe('client:["tenant-c","jwt","svc-1"]');
    expect(of({ ...machine, authMethod: 'service' })).toBe('client:[null,"service","svc-1"]');
    // An app's users share its client within their tenant, and only there.
    expect(of({ id: 'a-user-1', clientId: 'spa', tenantId: 'tenant-a' })).toBe(
      of({ id: 'a-user-2', clientId: 'spa', tenantId: 'tenant-a' }),
    );
    expect(of({ id: 'b-user', clientId: 'spa', tenantId: 'tenant-b' })).toBe(
      'client:["tenant-b","jwt","spa"]',
    );
    // Separators inside a client id or a tenant cannot rebuild another client's key.
    const lookalikes: Partial<Principal>[] = [
      { clientId: 'b:c', tenantId: 'a' },
      { clientId: 'c', tenantId: 'a:b' },
      { clientId: 'x', tenantId: 't","jwt' },
      { clientId: '"jwt","x', tenantId: 't' },
    ];
    expect(new Set(lookalikes.map(of)).size).toBe(lookalikes.length);
  });
});

describe('DynamoDbCounterStore on the embedded DynamoDB', () => {
  it('reads the stored TAT from the item its failed write returns, whatever that item holds', async () => {
    const counting = countingClient();
    const store = new DynamoDbCounterStore({ tableName, client: counting.client });
    // A day ahead of the TTL sweeper's real clock, so an item expired here is still in the table.
    const nowUs = (Date.now() + 24 * 3600 * 1000) * 1000;
    const nowSec = Math.floor(nowUs / 1_000_000);
    const write = {
      mode: 'busy' as const,
      nowUs,
      thresholdUs: nowUs + 20_000_000,
      incrementUs: 1,
      windowSec: 60,
      expiresAtSec: nowSec + 40,
    };
    const storageKey = (label: string): string => `RL#${uniquePolicyName(label)}#k`;
    const stored = async (label: string, attributes: Record<string, AttributeValue>): Promise<string> => {
      const pk = storageKey(label);
      await counting.client.send(
        new PutItemCommand({ TableName: tableName, Item: { pk: { S: pk }, sk: { S: 'RL' }, ...attributes } }),
      );
      return pk;
    };
    const over = await stored('over', {
      tat: { N: String(nowUs + 30_000_000) },
      windowSec: { N: '3600' },
      expiresAt: { N: String(nowSec + 40) },
    });
    // Written before items carried the window that counted them.
    const unwindowed = await stored('unwindowed', {
      tat: { N: String(nowUs + 30_000_000) },
      expiresAt: { N: String(nowSec + 40) },
    });
    // Past its expiresAt, the returned item counts as absent.
    const expired = await stored('expired', {
      tat: { N: String(nowUs + 30_000_000) },
      expiresAt: { N: String(nowSec - 60) },
    });
    const withoutTat = await stored('no-tat', { expiresAt: { N: String(nowSec + 40) } });
    counting.requests.clear();

    // With the window that counted it, so a TAT of another window is known for what it is.
    expect(await store.write(over, write)).toEqual({
      applied: false,
      known: true,
      stored: { tatUs: nowUs + 30_000_000, windowSec: 3600 },
    });
    expect(await store.write(unwindowed, write)).toEqual({
      applied: false,
      known: true,
      stored: { tatUs: nowUs + 30_000_000, windowSec: undefined },
    });
    expect(await store.write(expired, write)).toEqual({ applied: false, known: true, stored: undefined });
    expect(await store.write(withoutTat, write)).toEqual({ applied: false, known: true, stored: undefined });
    // No item, nothing returned: the caller has to read to be sure.
    expect(await store.write(storageKey('absent'), write)).toEqual({ applied: false, known: false });
    expect(Object.fromEntries(counting.requests)).toEqual({ UpdateItem: 5 });
    counting.client.destroy();
  });

  it('rebases an item only from the exact TAT and window it was converted from', async () => {
    const counting = countingClient();
    const store = new DynamoDbCounterStore({ tableName, client: counting.client });
    const nowUs = Date.now() * 1000;
    const nowSec = Math.floor(nowUs / 1_000_000);
    const tatUs = nowUs + 1_800_000_000;
    const convertedUs = nowUs + 30_000_000;
    const stored = async (label: string, windowSec?: number): Promise<string> => {
      const pk = `RL#${uniquePolicyName(label)}#k`;
      await counting.client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            pk: { S: pk },
            sk: { S: 'RL' },
            tat: { N: String(tatUs) },
            ...(windowSec === undefined ? {} : { windowSec: { N: String(windowSec) } }),
            expiresAt: { N: String(nowSec + 3600) },
          },
        }),
      );
      return pk;
    };
    const rebase = (from: { tatUs: number; windowSec: number | undefined }) => ({
      mode: 'rebase' as const,
      nowUs,
      windowSec: 60,
      from,
      tatUs: convertedUs,
      expiresAtSec: nowSec + 60,
    });
    const hourly = await stored('rebase-hourly', 3600);
    const unwindowed = await stored('rebase-unwindowed');
    // A TAT another writer has moved on since, or the right TAT in another window or in none: each
    // converted from something the item no longer is, so it stays as it is.
    for (const from of [
      { tatUs: tatUs - 1, windowSec: 3600 },
      { tatUs, windowSec: 600 },
      { tatUs, windowSec: undefined },
    ]) {
      expect(await store.write(hourly, rebase(from))).toEqual({
        applied: false,
        known: true,
        stored: { tatUs, windowSec: 3600 },
      });
    }
    for (const from of [
      { tatUs: tatUs - 1, windowSec: undefined },
      { tatUs, windowSec: 3600 },
    ]) {
      expect(await store.write(unwindowed, rebase(from))).toEqual({
        applied: false,
        known: true,
        stored: { tatUs, windowSec: undefined },
      });
    }
    expect(await store.write(hourly, rebase({ tatUs, windowSec: 3600 }))).toEqual({
      applied: true,
      tatUs: convertedUs,
    });
    expect(await store.write(unwindowed, rebase({ tatUs, windowSec: undefined }))).toEqual({
      applied: true,
      tatUs: convertedUs,
    });
    expect(await store.read(unwindowed, nowUs)).toEqual({ tatUs: convertedUs, windowSec: 60 });
    counting.client.destroy();
  });
});

/**
 * Unprocessed batch items, which the embedded DynamoDB never returns (dynalite processes every batch):
 * a pure unit test with a scripted client, since no server produces them here.
 */
describe('DynamoDbCounterStore with answers only real DynamoDB gives', () => {
  const scripted = (answers: Array<(command: unknown) => unknown>): DynamoDBClient =>
    ({
      send: async (command: unknown) => {
        const next = answers.shift();
        if (!next) throw new Error('unexpected request');
        return next(command);
      },
    }) as unknown as DynamoDBClient;

  it('retries unprocessed deletes, and gives up loudly when they never go through', async () => {
    const page = { Items: [{ pk: { S: 'RL#p#a' }, sk: { S: 'RL' } }] };
    const unprocessed = {
      UnprocessedItems: {
        'bulwark-toolkit': [{ DeleteRequest: { Key: { pk: { S: 'RL#p#a' }, sk: { S: 'RL' } } } }],
      },
    };
    const calls: string[] = [];
    const record = (answer: unknown) => (command: unknown) => {
      calls.push(
        command instanceof ScanCommand ? 'scan' : command instanceof BatchWriteItemCommand ? 'batch' : '?',
      );
      return answer;
    };
    const patient = new DynamoDbCounterStore({
      tableName: 'bulwark-toolkit',
      client: scripted([record(page), record(unprocessed), record({})]),
    });
    expect(await patient.deleteAll('RL#p#')).toBe(1);
    expect(calls).toEqual(['scan', 'batch', 'batch']);

    const stuck = new DynamoDbCounterStore({
      tableName: 'bulwark-toolkit',
      client: scripted([() => page, ...Array.from({ length: 6 }, () => () => unprocessed)]),
    });
    await expect(stuck.deleteAll('RL#p#')).rejects.toThrow(/were not deleted/);
  });
});
