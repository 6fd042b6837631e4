// Whether a user is still there (or why not) and whether their email is verified, for readers that hold no encryption key and need nothing else of the user.
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { isExpired } from '../../middleware/store/tables.js';
import { userKey } from './keys.js';

/**
 * A user's item as a reader that needs nothing else of it sees it: `unverified`, there with its email not
 * verified yet; `verified`, there with its email verified; `lapsed`, a registration not verified in time,
 * whose item TTL deletes days later; or `deleted`: no item, because the user was deleted or lapsed long
 * enough ago for TTL to have removed it.
 */
export type UserItemState = 'unverified' | 'verified' | 'lapsed' | 'deleted';

/**
 * `id`'s {@link UserItemState}. One consistent GetItem projecting the partition key, `expiresAt` and
 * `emailVerifiedAt` alone, so nothing is decrypted and no personal data leaves the table. For a reader that
 * holds no key and needs no more (the email worker, before sending to a user who may have been deleted, whose
 * registration may have lapsed, or whose address may have been verified since the message was queued). A
 * failed read rejects: absence is never guessed.
 */
export async function userItemState(
  documentClient: DynamoDBDocumentClient,
  tableName: string,
  id: string,
): Promise<UserItemState> {
  const { Item } = await documentClient.send(
    new GetCommand({
      TableName: tableName,
      Key: userKey(id),
      ConsistentRead: true,
      ProjectionExpression: 'pk, expiresAt, emailVerifiedAt',
    }),
  );
  if (Item === undefined) return 'deleted';
  if (isExpired(Item, Date.now())) return 'lapsed';
  return typeof Item.emailVerifiedAt === 'string' ? 'verified' : 'unverified';
}
