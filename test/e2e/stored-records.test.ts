// Records written by hand, by an older or a newer version: a reader makes up no value for an attribute that is
// missing or one it does not know, it answers a logged 500 naming the record and the attribute, never a value.
import { randomUUID } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { bookingKey, userKey } from '../../functions/shared/keys.js';
import { StoredRecordError } from '../../functions/shared/stored-attributes.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { generateEncryptionKey, LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { rejectionOf } from '../encryption/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { captureStdout } from '../helpers/log-capture.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';

// Read when the functions build their loggers, at the runtime's start: the error lines are asserted.
process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
const output = captureStdout();
// Tables of the file's own: the suite's other listings never meet these records.
const api = useLocalRuntime({ as: adminUser, ownAppTable: true, ownToolkitTable: true });
const documents = () =>
  createDocumentClient(createDynamoDbClient({ endpoint: api.runtime().dynamoDbEndpoint }));
const at = bookingDay(9);
let userId: string;
let nextHour = 8;

beforeAll(async () => {
  const created = await api.request('POST', '/users', {
    body: { email: `stored-${randomUUID()}@example.com`, name: 'Stored Shape' },
  });
  userId = (created.body as { id: string }).id;
});

async function stored(table: 'app' | 'toolkit', key: Record<string, string>) {
  const { Item } = await documents().send(
    new GetCommand({ TableName: api.runtime().tableNames[table], Key: key, ConsistentRead: true }),
  );
  return Item as Record<string, unknown>;
}

async function put(table: 'app' | 'toolkit', item: Record<string, unknown>): Promise<void> {
  await documents().send(new PutCommand({ TableName: api.runtime().tableNames[table], Item: item }));
}

async function newBooking(): Promise<string> {
  const start = nextHour;
  nextHour += 2;
  const created = await api.request('POST', '/bookings', {
    body: { roomId: `room-${randomUUID()}`, userId, start: at(start), end: at(start + 1) },
  });
  expect(created.status).toBe(201);
  return (created.body as { id: string }).id;
}

async function newEndpoint(token: string): Promise<string> {
  const created = await api.request('POST', '/webhooks', {
    token,
    body: { url: 'https://1.1.1.1/hook', eventTypes: ['booking.created'] },
  });
  expect(created.status).toBe(201);
  return (created.body as { id: string }).id;
}

/** The answer is the generic 500, and the one error line names the record's key and the attribute (`message`). */
/** A pending delivery of `endpointId`'s, as the worker stores one before its first attempt. */
function deliveryItem(endpointId: string) {
  const createdAt = new Date().toISOString();
  return {
    pk: `WH#${endpointId}`,
    sk: `DELIVERY#${createdAt}#${randomUUID()}`,
    webhookId: randomUUID(),
    endpointId,
    eventType: 'booking.created',
    status: 'pending',
    createdAt,
    updatedAt: createdAt,
    attempts: [],
  };
}

function expectStoredRecordFault(response: { status: number; body: unknown }, message: string) {
  expect(response.status).toBe(500);
  expect(response.body).toMatchObject({ code: 'INTERNAL', detail: 'An unexpected error occurred' });
  const errors = output.json().filter((line) => line.message === 'Request failed');
  expect(errors).toHaveLength(1);
  expect(errors[0]?.error).toMatchObject({ name: 'StoredRecordError', message });
}

const missing = (key: string, attribute: string) =>
  `The stored record ${key} has no ${attribute} (or not a string)`;

describe('a stored record missing an attribute or holding one this version does not know', () => {
  it('a booking without createdAt is a 500 naming it, not createdAt "undefined"', async () => {
    const id = await newBooking();
    const { createdAt, ...withoutCreatedAt } = await stored('app', bookingKey(id));
    await put('app', withoutCreatedAt);
    output.clear();
    expectStoredRecordFault(
      await api.request('GET', `/bookings/${id}`),
      missing(`BOOKING#${id}/BOOKING`, 'createdAt'),
    );
  });

  it('a booking of a status a newer version added is a 500 on read and on cancel, and stays as it is', async () => {
    const id = await newBooking();
    const item = { ...(await stored('app', bookingKey(id))), status: 'pending' };
    await put('app', item);
    output.clear();
    const unknownStatus = `The stored record BOOKING#${id}/BOOKING holds a value of status this version does not know`;
    expectStoredRecordFault(await api.request('GET', `/bookings/${id}`), unknownStatus);
    output.clear();
    // Not a 409 as if it were cancelled already, nor cancelled over a state this version cannot read.
    expectStoredRecordFault(await api.request('DELETE', `/bookings/${id}`), unknownStatus);
    expect(await stored('app', bookingKey(id))).toEqual(item);
    expect(output.lines().join('\n')).not.toContain('pending');
  });

  it('a user without createdAt is a 500 naming it', async () => {
    const created = await api.request('POST', '/users', {
      body: { email: `no-created-${randomUUID()}@example.com`, name: 'No Created' },
    });
    const { id } = created.body as { id: string };
    const { createdAt, ...withoutCreatedAt } = await stored('app', userKey(id));
    await put('app', withoutCreatedAt);
    output.clear();
    expectStoredRecordFault(
      await api.request('GET', `/users/${id}`),
      missing(`USER#${id}/USER`, 'createdAt'),
    );
  });

  it('verifying a user without emailIndex is an error naming it, not a lapsed registration, and writes nothing', async () => {
    const created = await api.request('POST', '/users', {
      body: { email: `no-index-${randomUUID()}@example.com`, name: 'No Index' },
    });
    const { id } = created.body as { id: string };
    const { emailIndex, ...withoutEmailIndex } = await stored('app', userKey(id));
    await put('app', withoutEmailIndex);
    // Verifying reads nothing encrypted: a key of its own is enough.
    const users = new UsersModel(
      documents(),
      api.runtime().tableNames.app,
      new Encryptor({ keyProvider: new LocalKeyProvider({ key: generateEncryptionKey() }) }),
    );
    await expect(users.isEmailVerified(id)).resolves.toBe(false);
    const refused = await rejectionOf(users.verifyEmail(id));
    expect(refused).toBeInstanceOf(StoredRecordError);
    expect(refused).toMatchObject({ message: missing(`USER#${id}/USER`, 'emailIndex') });
    expect(await stored('app', userKey(id))).toEqual(withoutEmailIndex);
  });

  it('a webhook endpoint without createdAt is a 500 naming it', async () => {
    const token = await api.token({ sub: userId });
    const id = await newEndpoint(token);
    const { createdAt, ...withoutCreatedAt } = await stored('toolkit', { pk: `WH#${id}`, sk: 'ENDPOINT' });
    await put('toolkit', withoutCreatedAt);
    output.clear();
    expectStoredRecordFault(
      await api.request('GET', `/webhooks/${id}`, { token }),
      missing(`WH#${id}/ENDPOINT`, 'createdAt'),
    );
  });

  it('a webhook delivery without updatedAt is a 500 naming it', async () => {
    const token = await api.token({ sub: userId });
    const id = await newEndpoint(token);
    const { updatedAt: _dropped, ...withoutUpdatedAt } = deliveryItem(id);
    const { sk } = withoutUpdatedAt;
    await put('toolkit', withoutUpdatedAt);
    output.clear();
    expectStoredRecordFault(
      await api.request('GET', `/webhooks/${id}/deliveries`, { token }),
      missing(`WH#${id}/${sk}`, 'updatedAt'),
    );
  });

  it('a webhook endpoint of a status a newer version added is a 500 naming it, not shown enabled', async () => {
    const token = await api.token({ sub: userId });
    const id = await newEndpoint(token);
    const key = { pk: `WH#${id}`, sk: 'ENDPOINT' };
    await put('toolkit', { ...(await stored('toolkit', key)), status: 'paused' });
    output.clear();
    expectStoredRecordFault(
      await api.request('GET', `/webhooks/${id}`, { token }),
      `The stored record WH#${id}/ENDPOINT holds a value of status this version does not know`,
    );
    expect(output.lines().join('\n')).not.toContain('paused');
  });

  it('a webhook endpoint without eventTypes is a 500 naming it, not one subscribed to nothing', async () => {
    const token = await api.token({ sub: userId });
    const id = await newEndpoint(token);
    const { eventTypes, ...withoutEventTypes } = await stored('toolkit', { pk: `WH#${id}`, sk: 'ENDPOINT' });
    await put('toolkit', withoutEventTypes);
    output.clear();
    expectStoredRecordFault(
      await api.request('GET', `/webhooks/${id}`, { token }),
      `The stored record WH#${id}/ENDPOINT has no eventTypes (or not a list)`,
    );
  });

  it('an endpoint registered before kinds were counted apart, without countKind, still reads and deletes', async () => {
    const token = await api.token({ sub: userId });
    const id = await newEndpoint(token);
    const key = { pk: `WH#${id}`, sk: 'ENDPOINT' };
    const { countKind, ...asBeforeKinds } = await stored('toolkit', key);
    expect(countKind).toBe('person');
    await put('toolkit', asBeforeKinds);
    expect(await api.request('GET', `/webhooks/${id}`, { token })).toMatchObject({
      status: 200,
      body: { id, status: 'enabled', eventTypes: ['booking.created'] },
    });
    expect((await api.request('DELETE', `/webhooks/${id}`, { token })).status).toBe(204);
    expect(await stored('toolkit', key)).toBeUndefined();
  });

  it.each([
    ['status', { status: 'bounced' }],
    ['eventType', { eventType: 'booking.moved' }],
  ])('a webhook delivery holding a %s a newer version added is a 500 naming it', async (attribute, newer) => {
    const token = await api.token({ sub: userId });
    const id = await newEndpoint(token);
    const item = deliveryItem(id);
    const { sk } = item;
    await put('toolkit', { ...item, ...newer });
    output.clear();
    expectStoredRecordFault(
      await api.request('GET', `/webhooks/${id}/deliveries`, { token }),
      `The stored record WH#${id}/${sk} holds a value of ${attribute} this version does not know`,
    );
  });
});
