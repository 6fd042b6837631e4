// Bulwark's RateLimiter next to rate-limiter-flexible's DynamoDB limiter and a bare UpdateItem ADD, on one embedded DynamoDB.
import { Agent } from 'node:http';
import {
  CreateTableCommand,
  DynamoDB,
  type DynamoDBClient,
  UpdateItemCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { RateLimiterDynamo, RateLimiterRes } from 'rate-limiter-flexible';
import { startDynamoDbProcess } from '../../bin/runtime/dynamodb-process.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { toolkitTable } from '../../middleware/store/tables.js';
import { type BenchSuite, type Measurement, percentile } from './harness.js';

const toolkitTableName = 'bench-toolkit';
const flexibleTableName = 'bench-rlflx';
const floodRequests = 10_000;
const floodLimit = 100;
const concurrency = 32;
const sequentialOps = Number(process.env.BENCH_RATE_LIMIT_OPS ?? 2000);
const concurrentOps = sequentialOps * 4;
const rounds = 6;

/** Counts every HTTP request a client sends (each attempt: the deserialize step sits inside the retry loop). */
function countRequests(client: DynamoDBClient): { total: () => number } {
  let total = 0;
  client.middlewareStack.add(
    (next) => async (args) => {
      total += 1;
      return next(args);
    },
    { step: 'deserialize', name: 'benchCountRequests' },
  );
  return { total: () => total };
}

/** The aggregated `DynamoDB` client rate-limiter-flexible requires, with the same transport as ours. */
function flexibleClient(endpoint: string): DynamoDB {
  return new DynamoDB({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({
      requestTimeout: 2000,
      connectionTimeout: 1000,
      throwOnRequestTimeout: true,
      httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }),
    }),
  });
}

interface Contender {
  readonly name: string;
  /** One operation for `key`; resolves to whether it was admitted. */
  readonly consume: (key: string) => Promise<boolean>;
  readonly requests: () => number;
}

/** Runs `ops` operations per round for each contender, interleaving rounds so machine noise hits all alike. */
async function latencies(
  contenders: readonly Contender[],
  workers: number,
  ops: number,
): Promise<Map<string, { samples: number[]; opsPerSec: number }>> {
  const out = new Map(
    contenders.map((contender) => [contender.name, { samples: [] as number[], elapsed: 0 }]),
  );
  for (let round = 0; round < rounds; round += 1) {
    // Each round starts with a different contender, so no one always runs first (or after the slowest).
    const order = [
      ...contenders.slice(round % contenders.length),
      ...contenders.slice(0, round % contenders.length),
    ];
    for (const contender of order) {
      const entry = out.get(contender.name) as { samples: number[]; elapsed: number };
      const perWorker = Math.ceil(ops / rounds / workers);
      const started = performance.now();
      await Promise.all(
        Array.from({ length: workers }, async (_, worker) => {
          // Each worker has its own keys, as each Lambda instance serves one request at a time.
          const key = `lat-${workers}-${worker}`;
          for (let index = 0; index < perWorker; index += 1) {
            const begin = performance.now();
            const admitted = await contender.consume(key);
            entry.samples.push(performance.now() - begin);
            if (!admitted) throw new Error(`${contender.name} rejected a request in the latency run`);
          }
        }),
      );
      entry.elapsed += performance.now() - started;
    }
  }
  return new Map(
    [...out].map(([name, { samples, elapsed }]) => [
      name,
      { samples, opsPerSec: (samples.length / elapsed) * 1000 },
    ]),
  );
}

/** Fires `floodRequests` consumes at one key from `concurrency` workers. */
async function flood(
  contender: Contender,
  key: string,
): Promise<{ admitted: number; rejected: number; requests: number }> {
  const before = contender.requests();
  let admitted = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < floodRequests) {
        next += 1;
        if (await contender.consume(key)) admitted += 1;
      }
    }),
  );
  return { admitted, rejected: floodRequests - admitted, requests: contender.requests() - before };
}

/** Requests per admitted operation once the key exists (the first write of a key is not steady state). */
async function perAdmitted(contender: Contender, key: string): Promise<number> {
  await contender.consume(key);
  const before = contender.requests();
  for (let index = 0; index < 500; index += 1) await contender.consume(key);
  return (contender.requests() - before) / 500;
}

const suite: BenchSuite = {
  name: 'rate limit on DynamoDB',
  async run() {
    const dynamoDb = await startDynamoDbProcess();
    const setup = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
    await ensureTables(setup, [{ definition: toolkitTable, tableName: toolkitTableName }]);
    // rate-limiter-flexible wants its own table keyed by `key`; created here, as a stack would.
    await setup.send(
      new CreateTableCommand({
        TableName: flexibleTableName,
        AttributeDefinitions: [{ AttributeName: 'key', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'key', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await waitUntilTableExists({ client: setup, maxWaitTime: 30 }, { TableName: flexibleTableName });
    setup.destroy();

    const oursClient = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
    const bareClient = createDynamoDbClient({ endpoint: dynamoDb.endpoint });
    const rlfClient = flexibleClient(dynamoDb.endpoint);
    const [oursCount, bareCount, rlfCount] = [oursClient, bareClient, rlfClient].map(countRequests) as [
      { total: () => number },
      { total: () => number },
      { total: () => number },
    ];

    const oursFor = (limit: number, windowSec: number, name: string, leaseMs?: number): Contender => {
      const limiter = new RateLimiter({
        policy: { name, limit, windowSec },
        tableName: toolkitTableName,
        client: oursClient,
        ...(leaseMs === undefined ? {} : { leaseMs }),
      });
      return {
        name:
          leaseMs === 0
            ? 'Bulwark RateLimiter as presets run it (no lease)'
            : 'Bulwark RateLimiter leasing (1,000,000/h policy; no preset leases)',
        consume: async (key) => (await limiter.consume(key)).allowed,
        requests: oursCount.total,
      };
    };
    const rlfFor = (
      points: number,
      duration: number,
      keyPrefix: string,
      inMemoryBlockOnConsumed?: number,
    ): Contender => {
      const limiter = new RateLimiterDynamo({
        storeClient: rlfClient,
        tableName: flexibleTableName,
        tableCreated: true,
        ttlSet: true,
        points,
        duration,
        keyPrefix,
        ...(inMemoryBlockOnConsumed === undefined ? {} : { inMemoryBlockOnConsumed }),
      });
      return {
        name: 'rate-limiter-flexible',
        consume: async (key) => {
          try {
            await limiter.consume(key);
            return true;
          } catch (error) {
            if (error instanceof RateLimiterRes) return false;
            throw error;
          }
        },
        requests: rlfCount.total,
      };
    };
    const bare: Contender = {
      name: 'bare UpdateItem ADD',
      consume: async (key) => {
        await bareClient.send(
          new UpdateItemCommand({
            TableName: toolkitTableName,
            Key: { pk: { S: `BARE#${key}` }, sk: { S: 'BARE' } },
            UpdateExpression: 'ADD #count :one',
            ExpressionAttributeNames: { '#count': 'count' },
            ExpressionAttributeValues: { ':one': { N: '1' } },
          }),
        );
        return true;
      },
      requests: bareCount.total,
    };

    try {
      // 1,000,000 per hour (278/s, T = 3.6 ms) never rejects here. A key leases only when it refills
      // faster than the lease (100 ms, so more than 36,000 per hour), which no preset does: presets make
      // one conditional write per admission. `asPresets` (leases off) runs exactly that path under the
      // roomy policy and carries the targets; `leasing` is the default limiter, which leases here, and is
      // reported beside it without a target.
      const leasing = oursFor(1_000_000, 3600, 'bench-roomy');
      const asPresets = oursFor(1_000_000, 3600, 'bench-roomy-single', 0);
      const roomyRlf = rlfFor(1_000_000, 3600, 'bench-roomy');
      const leasingPerAdmitted = await perAdmitted(leasing, 'steady');
      const asPresetsPerAdmitted = await perAdmitted(asPresets, 'steady');
      const rlfPerAdmitted = await perAdmitted(roomyRlf, 'steady');
      const barePerAdmitted = await perAdmitted(bare, 'steady');

      const oursFlood = await flood(oursFor(floodLimit, 60, 'bench-flood'), 'flood');
      // Each side refuses a key it knows is over its limit from memory: Bulwark does by default, and
      // rate-limiter-flexible with its documented in-memory block, which at the limit holds a key
      // refused until its window ends, without a store request.
      const rlfFlood = await flood(rlfFor(floodLimit, 60, 'bench-flood', floodLimit), 'flood');
      // Admissions cost what the steady-state run measured; the rest of the requests went to rejections.
      const perRejected = (run: typeof oursFlood, admittedCost: number) =>
        Math.max(0, run.requests - run.admitted * admittedCost) / run.rejected;
      // The flood policy refills one unit every 600 ms, slower than a lease: its admissions are single writes.
      const oursPerRejected = perRejected(oursFlood, asPresetsPerAdmitted);
      const rlfPerRejected = perRejected(rlfFlood, rlfPerAdmitted);
      for (const [name, run] of [
        ['ours', oursFlood],
        ['rate-limiter-flexible', rlfFlood],
      ] as const) {
        console.error(
          `flood ${name}: ${run.admitted} admitted, ${run.rejected} rejected, ${run.requests} requests`,
        );
      }

      const contenders = [bare, leasing, asPresets, roomyRlf];
      const sequential = await latencies(contenders, 1, sequentialOps);
      const parallel = await latencies(contenders, concurrency, concurrentOps);

      const at = (runs: typeof sequential, name: string) =>
        runs.get(name) as { samples: number[]; opsPerSec: number };
      const latencyRows = (label: string, runs: typeof sequential): Measurement[] => {
        const floor = at(runs, bare.name);
        const rows: Measurement[] = [];
        for (const p of [50, 99]) {
          for (const [contender, suffix] of [
            [asPresets, ''],
            [leasing, '.leased'],
            [roomyRlf, '.rlf'],
          ] as const) {
            const ours = contender === asPresets;
            rows.push({
              id: `rate-limit.${label}.p${p}${suffix}`,
              what: `${contender.name}: p${p} latency per consume, ${label}`,
              value: percentile(at(runs, contender.name).samples, p),
              unit: 'ms',
              baseline: { name: bare.name, value: percentile(floor.samples, p) },
              ...(ours && p === 50 ? { target: { ratio: 1.15, better: 'lower' as const } } : {}),
            });
          }
        }
        return rows;
      };
      const throughput = (name: string) => at(parallel, name).opsPerSec;

      return [
        {
          id: 'rate-limit.requests-per-admitted',
          what: 'DynamoDB requests per admitted request (steady state), as presets run it (no lease)',
          value: asPresetsPerAdmitted,
          unit: 'req',
          baseline: { name: 'rate-limiter-flexible', value: rlfPerAdmitted },
          target: { ratio: 0.5, better: 'lower' },
        },
        {
          id: 'rate-limit.requests-per-admitted.floor',
          what: 'DynamoDB requests per admitted request vs the bare write, as presets run it (no lease)',
          value: asPresetsPerAdmitted,
          unit: 'req',
          baseline: { name: bare.name, value: barePerAdmitted },
          target: { ratio: 1, better: 'lower' },
        },
        {
          id: 'rate-limit.requests-per-admitted.leased',
          what: 'DynamoDB requests per admitted request, leasing (1,000,000/h policy; no preset leases)',
          value: leasingPerAdmitted,
          unit: 'req',
          baseline: { name: 'rate-limiter-flexible', value: rlfPerAdmitted },
        },
        {
          id: 'rate-limit.requests-per-admitted.leased.floor',
          what: 'DynamoDB requests per admitted request vs the bare write, leasing (1,000,000/h policy)',
          value: leasingPerAdmitted,
          unit: 'req',
          baseline: { name: bare.name, value: barePerAdmitted },
        },
        {
          id: 'rate-limit.flood.requests-per-rejected',
          what: `DynamoDB requests per rejected request, ${floodRequests} at one key (limit ${floodLimit}), ${concurrency} concurrent`,
          value: oursPerRejected,
          unit: 'req',
          baseline: {
            name: `rate-limiter-flexible, inMemoryBlockOnConsumed ${floodLimit}`,
            value: rlfPerRejected,
          },
        },
        {
          id: 'rate-limit.flood.requests-per-rejected.bound',
          what: 'DynamoDB requests per rejected request in the flood vs the issue bound',
          value: oursPerRejected,
          unit: 'req',
          baseline: { name: 'issue bound', value: 0.01 },
          target: { ratio: 1, better: 'lower' },
        },
        ...latencyRows('concurrency 1', sequential),
        ...latencyRows(`concurrency ${concurrency}`, parallel),
        {
          id: 'rate-limit.throughput',
          what: `consumes/s, ${concurrency} concurrent, as presets run it (no lease)`,
          value: throughput(asPresets.name),
          unit: 'op/s',
          baseline: { name: 'rate-limiter-flexible', value: throughput(roomyRlf.name) },
          target: { ratio: 2.5, better: 'higher' },
        },
        {
          id: 'rate-limit.throughput.floor',
          what: `consumes/s, ${concurrency} concurrent, as presets run it (no lease), vs the bare write`,
          value: throughput(asPresets.name),
          unit: 'op/s',
          baseline: { name: bare.name, value: throughput(bare.name) },
        },
        {
          id: 'rate-limit.throughput.leased',
          what: `consumes/s, ${concurrency} concurrent, leasing (1,000,000/h policy; no preset leases)`,
          value: throughput(leasing.name),
          unit: 'op/s',
          baseline: { name: 'rate-limiter-flexible', value: throughput(roomyRlf.name) },
        },
        {
          id: 'rate-limit.throughput.leased.floor',
          what: `consumes/s, ${concurrency} concurrent, leasing (1,000,000/h policy), vs the bare write`,
          value: throughput(leasing.name),
          unit: 'op/s',
          baseline: { name: bare.name, value: throughput(bare.name) },
        },
        {
          id: 'rate-limit.throughput.floor.rlf',
          what: `rate-limiter-flexible consumes/s, ${concurrency} concurrent, vs the bare write`,
          value: throughput(roomyRlf.name),
          unit: 'op/s',
          baseline: { name: bare.name, value: throughput(bare.name) },
        },
      ];
    } finally {
      for (const client of [oursClient, bareClient, rlfClient]) client.destroy();
      await dynamoDb.stop();
    }
  },
};

export default suite;
