// Races the local runtime cannot show: it runs one invocation of a function at a time, so requests sent to
// it at once reach the models one after another. Here each call goes through a model of its own, over a
// DynamoDB client of its own, as on separate Lambda instances, and all of them are sent at once.
import { randomUUID } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { BookingsModel } from '../../functions/bookings/bookings-model.js';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { phoneCodeKey } from '../../functions/shared/keys.js';
import { phoneCodeMaxAttempts, UsersModel } from '../../functions/users/users-model.js';
import { ConflictError, GoneError, ValidationError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { bookingDay } from '../helpers/booking-times.js';
import { testTableNames } from '../helpers/tables.js';

const documentClients: DynamoDBDocumentClient[] = [];

/** A document client of its own, as one Lambda instance has. */
function instanceClient(): DynamoDBDocumentClient {
  const client = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
  documentClients.push(client);
  return client;
}

afterAll(() => {
  for (const client of documentClients) client.destroy();
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
});
