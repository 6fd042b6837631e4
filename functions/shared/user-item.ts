// Whether a user is still there, for readers that hold no encryption key and need nothing else of the user.
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { isExpired } from '../../middleware/store/tables.js';
import { userKey } from './keys.js';

/**
 * Whether `id`'s user is still there: its item exists and, for a registration not verified yet, has not
 * lapsed (TTL deletes a lapsed one days later). One consistent GetItem projecting the partition key and
 * `expiresAt` alone, so nothing is decrypted and no personal data leaves the table. For a reader that
 * holds no key and needs no more (the email worker, before sending to a user who may have been deleted, or
 * whose registration lapsed, since the message was queued). A failed read rejects: absence is never guessed.
 */
export async function userItemExists(
  documentClient: DynamoDBDocumentClient,
  tableName: string,
  id: string,
): Promise<boolean> {
  const { Item } = await documentClient.send(
    new GetCommand({
      TableName: tableName,
      Key: userKey(id),
      ConsistentRead: true,
      ProjectionExpression: 'pk, expiresAt',
    }),
  );
  return Item !== undefined && !isExpired(Item, Date.now());
}
