// Races the local runtime cannot show: it runs one invocation of a function at a time, so requests sent to
// it at once reach the models one after another. Here each call goes through a model of its own, over a
// DynamoDB client of its own, as on separate Lambda instances, and all of them are sent at once.
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { BookingsModel } from '../../functions/bookings/bookings-model.js';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import {
  readEnvironment,
  readQueueEnvironment,
  type SmsEnvironment,
} from '../../functions/shared/environment.js';
import { phoneCodeKey } from '../../functions/shared/keys.js';
import type { FunctionObservability } from '../../functions/shared/observability.js';
import {
  RegistrationEmails,
  type SmsAdmission,
  type SmsPurpose,
} from '../../functions/users/registration-emails.js';
import { SmsBudgets, smsDeploymentPolicy, smsRegionPolicy } from '../../functions/users/sms-budgets.js';
import {
  phoneCodeMaxAttempts,
  phoneCodeTtlSec,
  smsPerNumberPolicy,
  type User,
  UsersModel,
} from '../../functions/users/users-model.js';
import { ConflictError, GoneError, TooManyRequestsError, ValidationError } from '../../middleware/errors.js';
import { DynamoDbCounterStore } from '../../middleware/rate-limit/dynamodb-counter-store.js';
import { RateLimiter } from '../../middleware/rate-limit/rate-limiter.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { ensureTables } from '../../middleware/store/create-tables.js';
import { toolkitTable } from '../../middleware/store/tables.js';
import { bookingDay } from '../helpers/booking-times.js';
import { LocalWorkerQueues } from '../helpers/local-worker-queues.js';
import { auditingSecurityEvents, storedMetric, testObservability } from '../helpers/observability.js';
import { testTableNames } from '../helpers/tables.js';

const dynamoDbClients: DynamoDBClient[] = [];

/** A DynamoDB client of its own, as one Lambda instance has. */
function instanceDynamoDb(): DynamoDBClient {
  const client = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
  dynamoDbClients.push(client);
  return client;
}

/** A document client over a DynamoDB client of its own. */
const instanceClient = (): DynamoDBDocumentClient => createDocumentClient(instanceDynamoDb());

afterAll(() => {
  for (const client of dynamoDbClients) client.destroy();
});

/** The users model as the users function builds it, on an instance of its own. */
const usersInstance = () =>
  new UsersModel(instanceClient(), testTableNames.app, createFunctionEncryptor(readEnvironment()));

/** `count` calls of `call`, each on a fresh instance, all at once. */
function atOnce<T>(count: number, call: (index: number) => Promise<T>): Promise<PromiseSettledResult<T>[]> {
  return Promise.allSettled(Array.from({ length: count }, (_, index) => call(index)));
}

const reasonsOf = (results: readonly PromiseSettledResult<unknown>[]): unknown[] =>
  results.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []));

describe('on separate instances at once', () => {
  it('registers one of ten registrations of one email, in any case, and refuses the others 409', async () => {
    const local = `race-${randomUUID()}`;
    const spellings = [`${local}@example.com`, `${local.toUpperCase()}@EXAMPLE.COM`];
    const results = await atOnce(10, (index) =>
      usersInstance().register({ email: spellings[index % 2] as string, name: 'Racer' }),
    );
    const registered = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    expect(registered).toHaveLength(1);
    for (const reason of reasonsOf(results)) expect(reason).toBeInstanceOf(ConflictError);
    expect((await usersInstance().findByEmail(`${local}@example.com`)).id).toBe(registered[0]?.id);
  });

  it('books one of ten overlapping bookings of one room, and refuses the others 409', async () => {
    const user = await usersInstance().register({ email: `booker-${randomUUID()}@example.com`, name: 'Bo' });
    const at = bookingDay(3);
    const roomId = `room-${randomUUID()}`;
    const results = await atOnce(10, (index) =>
      new BookingsModel(instanceClient(), testTableNames.app).create({
        roomId,
        userId: user.id,
        start: new Date(at(8 + (index % 3))),
        end: new Date(at(11)),
      }),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const reason of reasonsOf(results)) {
      expect(reason).toEqual(new ConflictError(`Room ${roomId} is already booked for part of that period`));
    }
    const stored = await new BookingsModel(instanceClient(), testTableNames.app).list({
      limit: 10,
      userId: user.id,
    });
    expect(stored.items).toHaveLength(1);
  });

  it(`takes ${phoneCodeMaxAttempts} of twice as many wrong guesses at a phone code, then refuses even the right code`, async () => {
    const users = usersInstance();
    const user = await users.register({
      email: `guesser-${randomUUID()}@example.com`,
      name: 'Pat',
      phone: '+14155552671',
    });
    const { code } = await users.issuePhoneCode(user.id);
    const wrong = code === '000000' ? '000001' : '000000';
    const results = await atOnce(phoneCodeMaxAttempts * 2, () => usersInstance().verifyPhone(user.id, wrong));
    const reasons = reasonsOf(results);
    expect(reasons).toHaveLength(phoneCodeMaxAttempts * 2);
    expect(reasons.filter((reason) => reason instanceof ValidationError)).toHaveLength(phoneCodeMaxAttempts);
    expect(reasons.filter((reason) => reason instanceof GoneError)).toHaveLength(phoneCodeMaxAttempts);
    const { Item } = await instanceClient().send(
      new GetCommand({ TableName: testTableNames.app, Key: phoneCodeKey(user.id), ConsistentRead: true }),
    );
    expect(Item?.attempts).toBe(phoneCodeMaxAttempts);
    await expect(usersInstance().verifyPhone(user.id, code)).rejects.toEqual(
      new GoneError('Too many wrong codes; a new code is needed'),
    );
  });

  it('verifies an email once for ten clicks of its link at once: one call says it verified, all give its time', async () => {
    const user = await usersInstance().register({
      email: `clicker-${randomUUID()}@example.com`,
      name: 'Cleo',
    });
    const results = await atOnce(10, () => usersInstance().verifyEmail(user.id));
    const verified = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    expect(verified).toHaveLength(10);
    expect(verified.filter((result) => result.newlyVerified)).toHaveLength(1);
    expect(new Set(verified.map((result) => result.emailVerifiedAt)).size).toBe(1);
  });

  it('says a click verified nothing when another verified the email between its read and its write', async () => {
    const user = await usersInstance().register({ email: `late-${randomUUID()}@example.com`, name: 'Lou' });
    const lateClient = instanceClient();
    const original = lateClient.send.bind(lateClient);
    let otherClick: Awaited<ReturnType<UsersModel['verifyEmail']>> | undefined;
    // The other click lands once this one has read the user unverified, just before its transaction.
    vi.spyOn(lateClient, 'send').mockImplementation((async (command: unknown) => {
      if (command instanceof TransactWriteCommand && !otherClick) {
        otherClick = await usersInstance().verifyEmail(user.id);
      }
      return original(command as never);
    }) as typeof lateClient.send);
    const late = new UsersModel(lateClient, testTableNames.app, createFunctionEncryptor(readEnvironment()));
    const lateClick = await late.verifyEmail(user.id);
    expect(otherClick?.newlyVerified).toBe(true);
    expect(lateClick).toEqual({
      id: user.id,
      emailVerifiedAt: otherClick?.emailVerifiedAt,
      newlyVerified: false,
    });
  });
});

describe('a phone code against the clock', () => {
  it('refuses the right code from the very second the code expires, 410', async () => {
    const users = usersInstance();
    const user = await users.register({
      email: `expiry-${randomUUID()}@example.com`,
      name: 'Pat',
      phone: '+14155552671',
    });
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const { code } = await users.issuePhoneCode(user.id, { now: issuedAt });
    const atExpiry = new Date(issuedAt.getTime() + phoneCodeTtlSec * 1000);
    await expect(usersInstance().verifyPhone(user.id, code, atExpiry)).rejects.toEqual(
      new GoneError('The code has expired; a new code is needed'),
    );
  });
});

describe('SMS codes asked for at once, on separate instances', () => {
  // A real local-aws-sqs: the SMS of the code that is issued is queued for real.
  let sqs: LocalWorkerQueues;
  beforeAll(async () => {
    sqs = await LocalWorkerQueues.start('email-worker');
  });
  afterEach(() => sqs.reset());
  afterAll(() => sqs.stop());

  /** The phone numbers of the SMS queued, sorted. */
  const queuedTo = async () => (await sqs.enqueued<{ to: string }>()).map(({ body }) => body.to).sort();

  /** A request that lost the race for the user's code to a concurrent one. */
  const expectLostRace = (reason: unknown) => {
    expect(reason).toBeInstanceOf(TooManyRequestsError);
    expect(reason).toMatchObject({ message: 'A code was sent less than a minute ago' });
  };

  /** A toolkit table of its own per test: the deployment's budget has one key, which tests would share. */
  async function ownToolkitTable(): Promise<string> {
    const tableName = `bulwark-toolkit-races-${randomUUID().slice(0, 8)}`;
    await ensureTables(instanceDynamoDb(), [{ definition: toolkitTable, tableName }]);
    return tableName;
  }

  /**
   * `POST /users/{id}/phone-code` as the users function wires it, on an instance of its own: its users
   * model and its SMS budgets each over a DynamoDB client of its own. `watchAdmission` sees each call of
   * the budgets, with their answer, before the code's issue goes on.
   */
  function phoneCodeInstance(
    toolkitTableName: string,
    sms: SmsEnvironment,
    observability: FunctionObservability,
    watchAdmission: (admission: SmsAdmission) => Promise<void> = async () => {},
  ): RegistrationEmails {
    const users = usersInstance();
    const budgets = new SmsBudgets({
      store: new DynamoDbCounterStore({ tableName: toolkitTableName, client: instanceDynamoDb() }),
      sms,
      numberKey: (number) => users.smsBudgetKey(number),
      observability,
    });
    const { logger, auditLogger, metrics } = observability;
    return new RegistrationEmails({
      sqs: sqs.client,
      queues: readQueueEnvironment({
        EMAIL_QUEUE_URL: sqs.queueUrl,
        VERIFICATION_LINK_SECRET: 'x'.repeat(32),
      }),
      logger,
      auditLogger,
      metrics,
      issuePhoneCode: (userId, signal) => users.issuePhoneCode(userId, { abortSignal: signal }),
      admitSms: async (number: string, purpose: SmsPurpose) => {
        const admission = await budgets.admit(number, purpose);
        await watchAdmission(admission);
        return admission;
      },
    });
  }

  /** Units left in each SMS budget of `user`'s number, read from the table. */
  async function unitsLeft(toolkitTableName: string, sms: SmsEnvironment, user: User) {
    const left = (policy: ConstructorParameters<typeof RateLimiter>[0]['policy'], key: string) =>
      new RateLimiter({ policy, tableName: toolkitTableName, client: instanceDynamoDb() }).getRemaining(key);
    return {
      number: await left(smsPerNumberPolicy, await usersInstance().smsBudgetKey(user.phone as string)),
      region: await left(smsRegionPolicy(sms), 'region:US'),
      deployment: await left(smsDeploymentPolicy(sms), 'deployment'),
    };
  }

  const registerWithPhone = (phone: string) =>
    usersInstance().register({ email: `sms-${randomUUID()}@example.com`, name: 'Sam', phone });

  it('spends one unit of each SMS budget on ten requests of one user: the one that gets the code', async () => {
    const toolkitTableName = await ownToolkitTable();
    const sms = { regions: ['US'], perHour: 20, perRegionPerHour: 20 };
    const { observability } = testObservability('users');
    const user = await registerWithPhone('+14155550101');
    let admissions = 0;
    const results = await atOnce(10, () =>
      phoneCodeInstance(toolkitTableName, sms, observability, async () => {
        admissions += 1;
      }).sendPhoneCode(user, undefined),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const reason of reasonsOf(results)) expectLostRace(reason);
    expect(admissions).toBe(1);
    expect(await unitsLeft(toolkitTableName, sms, user)).toEqual({
      number: smsPerNumberPolicy.limit - 1,
      region: sms.perRegionPerHour - 1,
      deployment: sms.perHour - 1,
    });
    expect(await queuedTo()).toEqual(['+14155550101']);
  });

  it("refuses no other user's code while its region's budget has units, whatever one user asks at once", async () => {
    const toolkitTableName = await ownToolkitTable();
    // Room for exactly two SMS this hour in the region: one for each user.
    const sms = { regions: ['US'], perHour: 20, perRegionPerHour: 2 };
    const { observability } = testObservability('users');
    const observed = auditingSecurityEvents(observability);
    const [first, second] = [
      await registerWithPhone('+14155550102'),
      await registerWithPhone('+14155550103'),
    ];
    if (!first || !second) throw new Error('not registered');
    // The second user asks once each of the first user's requests has had its answer from the budgets
    // (or ended without asking), while the units they were given are still held.
    let secondUserDone: () => void = () => {};
    const holdUntilSecondUserDone = new Promise<void>((resolve) => {
      secondUserDone = resolve;
    });
    const reached: Promise<void>[] = [];
    const firstUsers = Promise.allSettled(
      Array.from({ length: 10 }, () => {
        let reachedBudgets: () => void = () => {};
        reached.push(
          new Promise<void>((resolve) => {
            reachedBudgets = resolve;
          }),
        );
        return phoneCodeInstance(toolkitTableName, sms, observed, async () => {
          reachedBudgets();
          await holdUntilSecondUserDone;
        })
          .sendPhoneCode(first, undefined)
          .finally(() => reachedBudgets());
      }),
    );
    await Promise.all(reached);
    const secondUsers = await Promise.allSettled([
      phoneCodeInstance(toolkitTableName, sms, observed).sendPhoneCode(second, undefined),
    ]);
    secondUserDone();
    const firstResults = await firstUsers;
    expect(reasonsOf(secondUsers)).toEqual([]);
    expect(firstResults.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const reason of reasonsOf(firstResults)) expectLostRace(reason);
    expect(storedMetric(observed.metrics, 'SmsBudgetExhausted')).toBeUndefined();
    expect((await unitsLeft(toolkitTableName, sms, second)).region).toBe(0);
    expect(await queuedTo()).toEqual(['+14155550102', '+14155550103']);
  });
});
