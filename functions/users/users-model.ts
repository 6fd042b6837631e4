// Users on the app table: registration with an atomic unique-email claim, lookup, listing, deletion.

import { randomUUID } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError } from '../../middleware/errors.js';
import { emailClaimKey, userKey } from '../shared/keys.js';
import { decodeCursor, encodeCursor, type Page } from '../shared/pagination.js';
import { failedConditionIndexes } from '../shared/transactions.js';

export interface User {
  id: string;
  email: string;
  name: string;
  createdAt: string;
}

export interface NewUser {
  email: string;
  name: string;
}

function toUser(item: Record<string, unknown>): User {
  return {
    id: String(item.id),
    email: String(item.email),
    name: String(item.name),
    createdAt: String(item.createdAt),
  };
}

export class UsersModel {
  constructor(
    private readonly documentClient: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Creates the user and claims its email in one transaction: a taken email is a 409, never a duplicate. */
  async register(input: NewUser, now = new Date()): Promise<User> {
    const user: User = {
      id: randomUUID(),
      email: input.email,
      name: input.name,
      createdAt: now.toISOString(),
    };
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  ...userKey(user.id),
                  ...user,
                  gsi1pk: 'USER',
                  gsi1sk: `${user.createdAt}#${user.id}`,
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            {
              // Two registrations racing for one email both reach here; the condition lets one win.
              Put: {
                TableName: this.tableName,
                Item: { ...emailClaimKey(user.email), userId: user.id },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
          ],
        }),
      );
    } catch (error) {
      const failed = failedConditionIndexes(error);
      if (failed?.includes(1)) throw new ConflictError('A user with this email already exists');
      throw error;
    }
    return user;
  }

  async get(id: string): Promise<User> {
    const { Item } = await this.documentClient.send(
      new GetCommand({ TableName: this.tableName, Key: userKey(id), ConsistentRead: true }),
    );
    if (!Item) throw new NotFoundError(`User ${id} not found`);
    return toUser(Item);
  }

  /** Users in registration order. */
  async list(limit: number, cursor?: string): Promise<Page<User>> {
    const result = await this.documentClient.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :type',
        ExpressionAttributeValues: { ':type': 'USER' },
        Limit: limit,
        ExclusiveStartKey: decodeCursor(cursor, ['pk', 'sk', 'gsi1pk', 'gsi1sk']),
      }),
    );
    const nextCursor = encodeCursor(result.LastEvaluatedKey);
    return { items: (result.Items ?? []).map(toUser), ...(nextCursor ? { nextCursor } : {}) };
  }

  /** Deletes the user and releases its email for a new registration, in one transaction. */
  async delete(id: string): Promise<User> {
    const user = await this.get(id);
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Delete: {
                TableName: this.tableName,
                Key: userKey(id),
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            {
              // The claim read above could have been released and retaken since; only drop our own.
              Delete: {
                TableName: this.tableName,
                Key: emailClaimKey(user.email),
                ConditionExpression: 'userId = :id',
                ExpressionAttributeValues: { ':id': id },
              },
            },
          ],
        }),
      );
    } catch (error) {
      if (failedConditionIndexes(error)?.length) throw new NotFoundError(`User ${id} not found`);
      throw error;
    }
    return user;
  }
}
