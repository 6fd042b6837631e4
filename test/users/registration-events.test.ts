// user.registered's mark on the user item: a registration puts the user on the pending-events index (gsi3)
// with the event pending, and marking it published takes both off.
import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { userKey } from '../../functions/shared/keys.js';
import { pendingPartition, pendingShardOf } from '../../functions/shared/pending-events-index.js';
import { WebhookFanOut } from '../../functions/shared/webhook-fanout.js';
import { WebhookSubscriptions } from '../../functions/shared/webhook-subscriptions.js';
import { RegistrationEventStore, RegistrationEvents } from '../../functions/users/registration-events.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testObservability } from '../helpers/observability.js';
import { testTableNames } from '../helpers/tables.js';

const dynamoDb = createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') });
const documents = createDocumentClient(dynamoDb);
const users = new UsersModel(documents, testTableNames.app, createFunctionEncryptor(readEnvironment()));
const store = new RegistrationEventStore(documents, testTableNames.app);
afterAll(() => dynamoDb.destroy());

/** The user item as stored: its pending events and its keys on the pending-events index. */
async function stored(userId: string) {
  const { Item } = await documents.send(
    new GetCommand({ TableName: testTableNames.app, Key: userKey(userId), ConsistentRead: true }),
  );
  return { pendingEvents: Item?.pendingEvents, gsi3pk: Item?.gsi3pk, gsi3sk: Item?.gsi3sk };
}

const register = (now: Date) =>
  users.register({ email: `pending-${randomUUID()}@example.com`, name: 'Ada' }, now);

describe('user.registered on the pending-events index', () => {
  it('lists a new user in its shard from its creation time, with user.registered pending', async () => {
    const createdAt = new Date('2031-03-04T05:06:07.890Z');
    const user = await register(createdAt);
    expect(await stored(user.id)).toEqual({
      pendingEvents: new Set(['user.registered']),
      gsi3pk: pendingPartition(pendingShardOf(user.id)),
      gsi3sk: `2031-03-04T05:06:07.890Z#${user.id}`,
    });
    expect(await store.findForSweep(user.id, createdAt)).toEqual({
      id: user.id,
      createdAt: '2031-03-04T05:06:07.890Z',
      pending: true,
      onPendingIndex: true,
      lapsed: false,
    });
  });

  it('takes the event and the index keys off when it is marked published, and leaves the user', async () => {
    const user = await register(new Date());
    expect((await stored(user.id)).gsi3pk).toBe(pendingPartition(pendingShardOf(user.id)));
    await store.markPublished(user.id);
    expect(await stored(user.id)).toEqual({ pendingEvents: undefined, gsi3pk: undefined, gsi3sk: undefined });
    expect((await users.get(user.id)).email).toBe(user.email);
  });

  it('reads a registration past its verification window as lapsed', async () => {
    const user = await register(new Date('2031-03-04T05:06:07.890Z'));
    const found = await store.findForSweep(user.id, new Date(user.expiresAt as string));
    expect(found?.lapsed).toBe(true);
  });

  it('refuses to mark a user that does not exist, and creates no item', async () => {
    const userId = `missing-${randomUUID()}`;
    await expect(store.markPublished(userId)).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    const { Item } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: userKey(userId), ConsistentRead: true }),
    );
    expect(Item).toBeUndefined();
    expect(await store.findForSweep(userId, new Date())).toBeUndefined();
  });
});

describe('publishing user.registered', () => {
  // No webhook queue: every publish goes out in full with no subscriber, so only the mark decides.
  const { observability } = testObservability('users');
  const webhooks = new WebhookFanOut({
    subscriptions: new WebhookSubscriptions({ documentClient: documents, tableName: testTableNames.toolkit }),
    sqs: undefined,
    queueUrl: undefined,
    observability,
  });
  const silentLogger = new Logger({ logLevel: 'SILENT' });

  it('answers published and takes the user off the index', async () => {
    const user = await register(new Date());
    const events = new RegistrationEvents({ store, webhooks, logger: silentLogger });
    expect(await events.publish(user, 'corr-1', undefined)).toBe('published');
    expect(await stored(user.id)).toEqual({ pendingEvents: undefined, gsi3pk: undefined, gsi3sk: undefined });
  });

  it('answers published for a user deleted since: with its item went its index entry', async () => {
    const events = new RegistrationEvents({ store, webhooks, logger: silentLogger });
    const gone = { id: `deleted-${randomUUID()}`, createdAt: new Date().toISOString() };
    expect(await events.publish(gone, 'corr-2', undefined)).toBe('published');
    const { Item } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: userKey(gone.id), ConsistentRead: true }),
    );
    expect(Item).toBeUndefined();
  });

  it('answers not-marked, leaving the event pending, when the mark fails otherwise', async () => {
    const user = await register(new Date());
    const elsewhere = new RegistrationEventStore(documents, `missing-table-${randomUUID()}`);
    const events = new RegistrationEvents({ store: elsewhere, webhooks, logger: silentLogger });
    expect(await events.publish(user, 'corr-3', undefined)).toBe('not-marked');
    expect((await stored(user.id)).pendingEvents).toEqual(new Set(['user.registered']));
  });
});
