// Users on the app table: registration with an atomic unique-email claim, lookup, listing, deletion.
// Email and phone are stored encrypted (context { tenantId, userId }); the email claim uses a blind index.

import { randomUUID } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { type Encryptor, normalizeEmail } from '../../middleware/encryption/encryptor.js';
import { ConflictError, NotFoundError } from '../../middleware/errors.js';
import { emailClaimKey, userKey } from '../shared/keys.js';
import { decodeCursor, encodeCursor, type Page } from '../shared/pagination.js';
import { defaultTenantId } from '../shared/tenant.js';
import { failedConditionIndexes } from '../shared/transactions.js';

export interface User {
  id: string;
  email: string;
  name: string;
  /** E.164, when given. */
  phone?: string;
  createdAt: string;
}

export interface NewUser {
  email: string;
  name: string;
  phone?: string | undefined;
}

/** The personal fields stored encrypted. */
export const encryptedUserFields = ['email', 'phone'] as const;
const emailIndexName = 'user-email';

function toUser(item: Record<string, unknown>): User {
  return {
    id: String(item.id),
    email: String(item.email),
    name: String(item.name),
    ...(typeof item.phone === 'string' ? { phone: item.phone } : {}),
    createdAt: String(item.createdAt),
  };
}

export class UsersModel {
  constructor(
    private readonly documentClient: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly encryptor: Encryptor,
    private readonly tenantId: string = defaultTenantId,
  ) {}

  private contextOf(userId: string) {
    return { tenantId: this.tenantId, userId };
  }

  /** Equal for equal emails in any case, so the claim and lookups work without the address in clear. */
  private emailIndexOf(email: string): Promise<string> {
    return this.encryptor.blindIndex(email, {
      name: emailIndexName,
      normalize: normalizeEmail,
      scope: this.tenantId,
    });
  }

  /** Decrypts a stored user item; an item of another tenant is treated as absent. */
  private async fromItem(item: Record<string, unknown>): Promise<User> {
    if (item.tenantId !== this.tenantId) throw new NotFoundError(`User ${String(item.id)} not found`);
    const plain = await this.encryptor.decryptFields(
      item,
      encryptedUserFields,
      this.contextOf(String(item.id)),
    );
    return toUser(plain);
  }

  /** Creates the user and claims its email in one transaction: a taken email is a 409, never a duplicate. */
  async register(input: NewUser, now = new Date()): Promise<User> {
    const user: User = {
      id: randomUUID(),
      email: input.email,
      name: input.name,
      ...(input.phone === undefined ? {} : { phone: input.phone }),
      createdAt: now.toISOString(),
    };
    // Encrypting before the write: if the key is unavailable, nothing is written at all.
    const emailIndex = await this.emailIndexOf(user.email);
    const item = await this.encryptor.encryptFields(
      { ...userKey(user.id), ...user, tenantId: this.tenantId, emailIndex },
      encryptedUserFields,
      this.contextOf(user.id),
    );
    try {
      await this.documentClient.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  ...item,
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
                Item: { ...emailClaimKey(emailIndex), userId: user.id },
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
    return this.fromItem(Item);
  }

  /** Finds a user by email through the blind-index claim; the email is never compared in clear. */
  async findByEmail(email: string): Promise<User> {
    const { Item } = await this.documentClient.send(
      new GetCommand({
        TableName: this.tableName,
        Key: emailClaimKey(await this.emailIndexOf(email)),
        ConsistentRead: true,
      }),
    );
    if (!Item) throw new NotFoundError('No user with this email');
    return this.get(String(Item.userId));
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
    const own = (result.Items ?? []).filter((item) => item.tenantId === this.tenantId);
    const items = await Promise.all(own.map((item) => this.fromItem(item)));
    return { items, ...(nextCursor ? { nextCursor } : {}) };
  }

  /** Deletes the user and releases its email for a new registration, in one transaction. */
  async delete(id: string): Promise<User> {
    const user = await this.get(id);
    const emailIndex = await this.emailIndexOf(user.email);
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
                Key: emailClaimKey(emailIndex),
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
