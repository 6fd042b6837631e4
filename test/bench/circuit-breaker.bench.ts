// Circuit breaker: closed-state overhead vs opossum, DynamoDB requests on the success path, and a fleet against a dead dependency.

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import CircuitBreakerOpossum from 'opossum';
import { startDynamoDbProcess } from '../../bin/runtime/dynamodb-process.js';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { DynamoDbCircuitStateStore } from '../../middleware/circuit-breaker/dynamodb-store.js';
import { CircuitOpenError } from '../../middleware/errors.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { toolkitTable } from '../../middleware/store/tables.js';
import type { BenchSuite, Measurement } from './harness.js';

const tableName = 'bulwark-toolkit';
const overheadCalls = 200_000;
const overheadRounds = 5;
const successCalls = 10_000;
/** The success-path run is spread over this long, so that state refreshes are due during it. */
const successRunMs = 5000;
const fleetSize = 10;
const failureThreshold = 5;
const quiet = { warn: () => {}, info: () => {} };

const immediate = () => Promise.resolve(1);

/** A client that counts the DynamoDB requests sent through it. */
function countingClient(endpoint: string): { client: DynamoDBClient; requests: () => number } {
  const client = createDynamoDbClient({ endpoint });
  let requests = 0;
  client.middlewareStack.add(
    (next) => async (args) => {
      requests += 1;
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  return { client, requests: () => requests };
}

/** Mean ns per call of `count` sequential awaited calls. */
async function nsPerCall(call: () => Promise<unknown>, count: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let index = 0; index < count; index += 1) await call();
  return Number(process.hrtime.bigint() - started) / count;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/** Per-call cost of each variant: rounds interleaved (so load on the machine hits all alike), median kept. */
async function closedStateCosts(endpoint: string) {
  const bulwark = new CircuitBreaker<number>({
    name: `bench-closed-${Date.now()}`,
    store: new DynamoDbCircuitStateStore({ tableName, client: createDynamoDbClient({ endpoint }) }),
    logger: quiet,
  });
  const opossumDefault = new CircuitBreakerOpossum(immediate, {});
  const opossumNoTimeout = new CircuitBreakerOpossum(immediate, { timeout: false });
  const variants = {
    direct: () => immediate(),
    bulwark: () => bulwark.execute(immediate),
    opossumDefault: () => opossumDefault.fire(),
    opossumNoTimeout: () => opossumNoTimeout.fire(),
  };
  const samples: Record<keyof typeof variants, number[]> = {
    direct: [],
    bulwark: [],
    opossumDefault: [],
    opossumNoTimeout: [],
  };
  for (const call of Object.values(variants)) await nsPerCall(call, 20_000);
  for (let round = 0; round < overheadRounds; round += 1) {
    for (const [name, call] of Object.entries(variants) as [
      keyof typeof variants,
      () => Promise<unknown>,
    ][]) {
      samples[name].push(await nsPerCall(call, overheadCalls));
    }
  }
  opossumDefault.shutdown();
  opossumNoTimeout.shutdown();
  return {
    direct: median(samples.direct),
    bulwark: median(samples.bulwark),
    opossumDefault: median(samples.opossumDefault),
    opossumNoTimeout: median(samples.opossumNoTimeout),
  };
}

/**
 * 10,000 successful calls spread over `successRunMs`: how many DynamoDB requests they cost, and how many
 * state refreshes were due. Each refresh keeps the state for `stateTtlMs` from the call that read it, so
 * calls from `firstCallAt` to `lastCallAt` can need at most ⌊(lastCallAt − firstCallAt) / stateTtlMs⌋ + 1
 * reads: counted from the calls' own times, not the run's length, which timer jitter moves across a
 * multiple of the TTL (5 or 6).
 */
async function successPathRequests(
  endpoint: string,
): Promise<{ requests: number; due: number; spanMs: number }> {
  const counted = countingClient(endpoint);
  const stateTtlMs = 1000;
  const breaker = new CircuitBreaker<number>({
    name: `bench-success-${Date.now()}`,
    store: new DynamoDbCircuitStateStore({ tableName, client: counted.client }),
    stateTtlMs,
    logger: quiet,
  });
  const batches = 500;
  const perBatch = successCalls / batches;
  // Taken before the first call starts and after the last one ends, the span holds every call's clock
  // reading (the breaker's Date.now()), so the bound below can only be generous, never short.
  const firstCallAt = Date.now();
  let lastCallAt = firstCallAt;
  for (let batch = 0; batch < batches; batch += 1) {
    for (let index = 0; index < perBatch; index += 1) await breaker.execute(immediate);
    lastCallAt = Date.now();
    const next = firstCallAt + ((batch + 1) * successRunMs) / batches;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
  }
  const spanMs = lastCallAt - firstCallAt;
  return { requests: counted.requests(), due: Math.floor(spanMs / stateTtlMs) + 1, spanMs };
}

/**
 * Ten instances (separate objects, clients and caches) calling a dead dependency together, one
 * request at a time each as a Lambda instance does, until every one of them fails fast.
 */
async function fleetFailures(makeCall: (index: number) => () => Promise<unknown>): Promise<number> {
  let failures = 0;
  const fastFailing = new Set<number>();
  const calls = Array.from({ length: fleetSize }, (_, index) => makeCall(index));
  for (let round = 0; round < 100 && fastFailing.size < fleetSize; round += 1) {
    await Promise.all(
      calls.map(async (call, index) => {
        if (fastFailing.has(index)) return;
        try {
          await call();
        } catch (error) {
          if (error instanceof CircuitOpenError || (error as { code?: string }).code === 'EOPENBREAKER') {
            fastFailing.add(index);
          } else {
            failures += 1;
          }
        }
      }),
    );
  }
  return failures;
}

const dead = () => Promise.reject(new Error('dependency down'));

async function bulwarkFleet(endpoint: string): Promise<number> {
  const name = `bench-fleet-${Date.now()}`;
  const breakers = Array.from(
    { length: fleetSize },
    () =>
      new CircuitBreaker({
        name,
        failureThreshold,
        store: new DynamoDbCircuitStateStore({ tableName, client: createDynamoDbClient({ endpoint }) }),
        logger: quiet,
      }),
  );
  return fleetFailures((index) => () => (breakers[index] as CircuitBreaker).execute(dead));
}

async function opossumFleet(): Promise<number> {
  // opossum has no failure count: volumeThreshold 5 at a 50 % error rate opens on the fifth failure.
  const breakers = Array.from(
    { length: fleetSize },
    () =>
      new CircuitBreakerOpossum(dead, { volumeThreshold: failureThreshold, errorThresholdPercentage: 50 }),
  );
  const failures = await fleetFailures((index) => () => (breakers[index] as CircuitBreakerOpossum).fire());
  for (const breaker of breakers) breaker.shutdown();
  return failures;
}

const suite: BenchSuite = {
  name: 'circuit-breaker',
  async run(): Promise<Measurement[]> {
    const dynamoDb = await startDynamoDbProcess();
    try {
      const setup = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
      await ensureTables(setup, [{ definition: toolkitTable, tableName }]);
      setup.destroy();

      const costs = await closedStateCosts(dynamoDb.endpoint);
      const overhead = costs.bulwark - costs.direct;
      const success = await successPathRequests(dynamoDb.endpoint);
      const fleet = await bulwarkFleet(dynamoDb.endpoint);
      const perProcess = await opossumFleet();

      return [
        {
          id: 'cb.closed.overhead',
          what: `closed-state overhead per call (${overheadCalls / 1000}k calls), vs opossum, default 10 s timeout`,
          value: overhead,
          unit: 'ns',
          baseline: { name: 'opossum', value: costs.opossumDefault - costs.direct },
          target: { ratio: 0.5, better: 'lower' },
        },
        {
          id: 'cb.closed.overhead.no-timeout',
          what: 'closed-state overhead per call, vs opossum with timeout: false',
          value: overhead,
          unit: 'ns',
          baseline: { name: 'opossum (no timeout)', value: costs.opossumNoTimeout - costs.direct },
        },
        {
          id: 'cb.closed.per-call',
          what: 'closed-state cost per call, vs calling the function directly',
          value: costs.bulwark,
          unit: 'ns',
          baseline: { name: 'direct call', value: costs.direct },
        },
        {
          id: 'cb.success.requests',
          what: `DynamoDB requests per ${successCalls.toLocaleString('en')} successful calls over ${successRunMs / 1000} s (stateTtlMs 1000)`,
          value: success.requests,
          unit: 'requests',
          baseline: {
            name: `state refreshes due (⌊${success.spanMs} ms from first to last call / 1000⌋ + 1)`,
            value: success.due,
          },
          target: { ratio: 1, better: 'lower' },
        },
        {
          id: 'cb.fleet.failures',
          what: `failed calls before all ${fleetSize} instances fail fast (threshold ${failureThreshold})`,
          value: fleet,
          unit: 'calls',
          baseline: { name: 'opossum, per process', value: perProcess },
          target: { ratio: (failureThreshold + fleetSize) / (failureThreshold * fleetSize), better: 'lower' },
        },
      ];
    } finally {
      await dynamoDb.stop();
    }
  },
};

export default suite;
