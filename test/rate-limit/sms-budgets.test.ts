// The users function's SMS budgets (each number's, each region's, the deployment's) on a real toolkit table (dynalite).
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { SmsEnvironment } from '../../functions/shared/environment.js';
import { SmsBudgets } from '../../functions/users/sms-budgets.js';
import { smsPerNumberPolicy } from '../../functions/users/users-model.js';
import { ConflictError, ServiceUnavailableError } from '../../middleware/errors.js';
import { metricCatalog, metricNamespace } from '../../middleware/metrics/catalog.js';
import type { CounterStore } from '../../middleware/rate-limit/counter-store.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { toolkitTable } from '../../middleware/store/tables.js';
import { captureStdout, emfProblems, enableMetricsOutput } from '../helpers/log-capture.js';
import { auditingSecurityEvents, storedMetric, testObservability } from '../helpers/observability.js';
import { throttlingError } from '../helpers/throttling.js';
import { refusedPort } from './helpers.js';

enableMetricsOutput();
const output = captureStdout();
const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });

/** A toolkit table of its own per test: the deployment's budget has one key, which tests would share. */
async function ownToolkitTable(): Promise<string> {
  const tableName = `bulwark-toolkit-sms-${randomUUID().slice(0, 8)}`;
  await ensureTables(dynamoDb, [{ definition: toolkitTable, tableName }]);
  return tableName;
}

const numberKey = async (phoneNumber: string) => `phone:${phoneNumber}`;

function budgets(tableName: string, sms: SmsEnvironment, client = dynamoDb) {
  const { observability, audits } = testObservability('users');
  const listening = auditingSecurityEvents(observability);
  return {
    smsBudgets: new SmsBudgets({
      store: new DynamoDbCounterStore({ tableName, client }),
      sms,
      numberKey,
      observability: listening,
    }),
    audits,
    metrics: listening.metrics,
  };
}

/** A number's budget as SmsBudgets keeps it, read from the same table. */
const numberBudget = (tableName: string) =>
  new RateLimiter({ policy: smsPerNumberPolicy, tableName, client: dynamoDb });

let usNumber = 0;
/** A US mobile number (+1 415 555 …) no other test of this file uses. */
const us = () => `+1415555${String(1000 + usNumber++)}`;
let gbNumber = 0;
/** A GB mobile number (+44 7400 …) no other test of this file uses. */
const gb = () => `+447400${String(100_000 + gbNumber++)}`;

describe('SmsBudgets', () => {
  let tableName: string;
  beforeAll(async () => {
    tableName = await ownToolkitTable();
  });

  it("admits a region's budget of SMS, then refuses its numbers for an hour's share, giving the number its unit back", async () => {
    const table = await ownToolkitTable();
    const { smsBudgets } = budgets(table, { regions: ['US'], perHour: 100, perRegionPerHour: 3 });
    for (let sms = 0; sms < 3; sms += 1) {
      expect(await smsBudgets.admit(us(), 'registration')).toMatchObject({ allowed: true });
    }
    const fourth = us();
    const refused = await smsBudgets.admit(fourth, 'phone-code');
    expect(refused).toEqual({ allowed: false, retryAfterSec: expect.any(Number), refusedBy: 'region' });
    // One SMS every 20 minutes refills the region: the wait is at most that.
    expect(refused.allowed === false && refused.retryAfterSec).toBeGreaterThan(1150);
    expect(refused.allowed === false && refused.retryAfterSec).toBeLessThanOrEqual(1200);
    expect(await numberBudget(table).getRemaining(await numberKey(fourth))).toBe(smsPerNumberPolicy.limit);
  });

  it("refuses every region once the deployment's budget is spent, giving the number and the region their units back", async () => {
    const table = await ownToolkitTable();
    const { smsBudgets } = budgets(table, { regions: ['US', 'GB'], perHour: 3, perRegionPerHour: 2 });
    expect(await smsBudgets.admit(us(), 'registration')).toMatchObject({ allowed: true });
    expect(await smsBudgets.admit(us(), 'registration')).toMatchObject({ allowed: true });
    expect(await smsBudgets.admit(gb(), 'registration')).toMatchObject({ allowed: true });
    const number = gb();
    expect(await smsBudgets.admit(number, 'registration')).toEqual({
      allowed: false,
      retryAfterSec: expect.any(Number),
      refusedBy: 'deployment',
    });
    expect(await numberBudget(table).getRemaining(await numberKey(number))).toBe(smsPerNumberPolicy.limit);
    const gbRegion = new RateLimiter({
      policy: { name: 'sms-region', limit: 2, windowSec: 3600 },
      tableName: table,
      client: dynamoDb,
    });
    expect(await gbRegion.getRemaining('region:GB')).toBe(1);
  });

  it("refuses a number past its own budget before the region's or the deployment's is spent", async () => {
    const { smsBudgets } = budgets(tableName, { regions: ['US'], perHour: 100, perRegionPerHour: 50 });
    const number = us();
    for (let sms = 0; sms < smsPerNumberPolicy.limit; sms += 1) {
      expect(await smsBudgets.admit(number, 'registration')).toMatchObject({ allowed: true });
    }
    expect(await smsBudgets.admit(number, 'registration')).toMatchObject({
      allowed: false,
      refusedBy: 'number',
    });
    const region = new RateLimiter({
      policy: { name: 'sms-region', limit: 50, windowSec: 3600 },
      tableName,
      client: dynamoDb,
    });
    expect(await region.getRemaining('region:US')).toBe(50 - smsPerNumberPolicy.limit);
  });

  it('gives all three units back when an admitted SMS is not sent after all', async () => {
    const table = await ownToolkitTable();
    const { smsBudgets } = budgets(table, { regions: ['US'], perHour: 2, perRegionPerHour: 1 });
    const number = us();
    const admitted = await smsBudgets.admit(number, 'phone-code');
    if (!admitted.allowed) throw new Error('the first SMS should be admitted');
    expect(await smsBudgets.admit(us(), 'phone-code')).toMatchObject({ allowed: false, refusedBy: 'region' });
    await admitted.refund();
    expect(await numberBudget(table).getRemaining(await numberKey(number))).toBe(smsPerNumberPolicy.limit);
    expect(await smsBudgets.admit(us(), 'phone-code')).toMatchObject({ allowed: true });
  });

  it("audits a region's or the deployment's refusal as rateLimit.hit and counts SmsBudgetExhausted; RateLimited only for a requested code", async () => {
    const table = await ownToolkitTable();
    const { smsBudgets, audits, metrics } = budgets(table, {
      regions: ['US', 'GB', 'JE'],
      perHour: 2,
      perRegionPerHour: 1,
    });
    /** The SmsBudgetExhausted data points written so far (each its own EMF line: it has a dimension). */
    const exhausted = () =>
      output.emf().flatMap((line) => (line.SmsBudgetExhausted === undefined ? [] : [line.budget]));
    await smsBudgets.admit(us(), 'registration');
    await smsBudgets.admit(us(), 'registration');
    expect(audits).toEqual([
      expect.objectContaining({
        eventType: 'rateLimit.hit',
        outcome: 'denied',
        metadata: expect.objectContaining({ policy: 'sms-region', keyBy: 'region', region: 'US', limit: 1 }),
      }),
    ]);
    expect(exhausted()).toEqual(['region']);
    expect(output.emf().flatMap((line) => emfProblems(line, metricCatalog, metricNamespace))).toEqual([]);
    // A registration past the budget is still a 201: no 429 to count.
    expect(storedMetric(metrics, 'RateLimited')).toBeUndefined();
    expect(await smsBudgets.admit(gb(), 'phone-code')).toMatchObject({ allowed: true });
    // Jersey's budget is whole, the deployment's spent.
    expect(await smsBudgets.admit('+447797123456', 'phone-code')).toMatchObject({ refusedBy: 'deployment' });
    expect(audits.at(-1)).toMatchObject({
      eventType: 'rateLimit.hit',
      metadata: { policy: 'sms-deployment', keyBy: 'deployment', limit: 2 },
    });
    expect(exhausted()).toEqual(['region', 'deployment']);
    expect(storedMetric(metrics, 'RateLimited')).toBe(1);
  });

  it('refuses a number of a region that is not allowed (409) and spends nothing', async () => {
    const { smsBudgets } = budgets(tableName, { regions: ['GB'], perHour: 10, perRegionPerHour: 5 });
    const number = us();
    await expect(smsBudgets.admit(number, 'phone-code')).rejects.toThrow(
      new ConflictError('SMS codes are no longer sent to numbers of US'),
    );
    await expect(smsBudgets.admit('+8816212345678', 'phone-code')).rejects.toThrow(
      new ConflictError('SMS codes are no longer sent to this number'),
    );
    expect(await numberBudget(tableName).getRemaining(await numberKey(number))).toBe(
      smsPerNumberPolicy.limit,
    );
  });

  it('refuses an Abkhazian +7 940 number stored under an allowed RU, as registration does (409)', async () => {
    const { smsBudgets } = budgets(tableName, { regions: ['RU'], perHour: 10, perRegionPerHour: 5 });
    await expect(smsBudgets.admit('+79407123456', 'phone-code')).rejects.toThrow(
      new ConflictError('SMS codes are no longer sent to this number'),
    );
    expect(await smsBudgets.admit('+79161234567', 'phone-code')).toMatchObject({ allowed: true });
  });

  it.each([
    ['region', 'sms-region'],
    ['deployment', 'sms-deployment'],
  ])(
    'fails closed (503) when only the %s budget’s store fails, giving the units taken before it back',
    async (_budget, policyName) => {
      const table = await ownToolkitTable();
      const healthy = new DynamoDbCounterStore({ tableName: table, client: dynamoDb });
      // The table answers every budget but this one, which throttles as DynamoDB does.
      const failing: CounterStore = {
        write: (storageKey, write) =>
          storageKey.startsWith(`RL#${policyName}#`)
            ? Promise.reject(throttlingError())
            : healthy.write(storageKey, write),
        read: (storageKey, nowUs) => healthy.read(storageKey, nowUs),
        delete: (storageKey) => healthy.delete(storageKey),
        deleteAll: (prefix) => healthy.deleteAll(prefix),
      };
      const { observability } = testObservability('users');
      const smsBudgets = new SmsBudgets({
        store: failing,
        sms: { regions: ['US'], perHour: 10, perRegionPerHour: 5 },
        numberKey,
        observability,
      });
      const number = us();
      await expect(smsBudgets.admit(number, 'phone-code')).rejects.toBeInstanceOf(ServiceUnavailableError);
      expect(await numberBudget(table).getRemaining(await numberKey(number))).toBe(smsPerNumberPolicy.limit);
      const region = new RateLimiter({
        policy: { name: 'sms-region', limit: 5, windowSec: 3600 },
        tableName: table,
        client: dynamoDb,
      });
      expect(await region.getRemaining('region:US')).toBe(5);
    },
  );

  it('sends nothing when the store is down: the region and deployment budgets fail closed (503), whatever the number’s fallback says', async () => {
    const down = createDynamoDbClient({ endpoint: `http://127.0.0.1:${refusedPort}`, maxAttempts: 1 });
    const { smsBudgets } = budgets(tableName, { regions: ['US'], perHour: 10, perRegionPerHour: 5 }, down);
    await expect(smsBudgets.admit(us(), 'phone-code')).rejects.toBeInstanceOf(ServiceUnavailableError);
    down.destroy();
  });
});
