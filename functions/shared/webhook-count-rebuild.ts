// Rebuilding webhook owners' endpoint count items from their endpoints: an operator's repair after a rollback
// past the per-kind counts (bin/recount-webhook-owners.ts), kept out of the functions' bundles.
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError } from '../../middleware/errors.js';
import {
  endpointCountKey,
  isConditionFailure,
  keySegmentValue,
  ownerIndexPk,
  ownerIndexTenantPrefix,
  type PrincipalKind,
  type WebhookStore,
} from './webhook-store.js';

/** Past this many rebuilds whose write found the count item changed since it was read, a recount answers 409. */
const maxRecountAttempts = 5;

/** A count item {@link WebhookCountRebuilder.recountOwner} changed: its count before and after; undefined = no item. */
export interface CountRebuild {
  readonly tenantId: string;
  readonly ownerId: string;
  readonly countItem: string;
  readonly before: number | undefined;
  readonly after: number | undefined;
  /** The item's `closedAt` marker, kept. */
  readonly closedAt?: string;
}

export interface WebhookCountRebuilderOptions {
  /** The store whose count items are rebuilt, on the same table. */
  readonly store: WebhookStore;
  readonly documentClient: DynamoDBDocumentClient;
  readonly tableName: string;
}

/**
 * Rebuilds owners' endpoint count items from the endpoints they count, for an operator after a rollback past
 * the per-kind counts (or the upgrade after it) left them wrong.
 *
 * @example
 * const rebuilder = new WebhookCountRebuilder({ store, documentClient, tableName });
 * for (const owner of await rebuilder.listEndpointOwners('default')) await rebuilder.recountOwner('default', owner);
 */
export class WebhookCountRebuilder {
  constructor(private readonly options: WebhookCountRebuilderOptions) {}

  /**
   * Rebuilds an owner's two count items: `ENDPOINT_COUNT` = the endpoints whose `countKind` is absent or
   * `person`, `INTEGRATION_ENDPOINT_COUNT` = those whose `countKind` is `integration`. An item keeps its
   * `closedAt`; one that would count 0 without a `closedAt` is removed, as a delete does. Resolves with the
   * items it changed (or, with `dryRun`, would change), before and after.
   *
   * Each item is read consistently first, the endpoints listed from the owner index afterwards and each
   * confirmed with a consistent read, and the new count written only if the item still holds what was read:
   * a registration or delete committed after that read changes the count, fails the write, and the item is
   * rebuilt again (409 after {@link maxRecountAttempts} tries). What this cannot see: a registration
   * committed before the read that the eventually consistent index does not show yet (it is left out of
   * the count), and a registration and a delete of another endpoint both committed after the read, which
   * leave the count as it was (the first needs a registration within the index's propagation delay before
   * the rebuild, the second two writes during it: a few reads long); running it again for the owner once
   * its endpoints are quiet and the index caught up corrects either.
   */
  async recountOwner(
    tenantId: string,
    ownerId: string,
    options: { readonly dryRun?: boolean } = {},
  ): Promise<CountRebuild[]> {
    const rebuilt: CountRebuild[] = [];
    for (const kind of ['person', 'integration'] as const) {
      const change = await this.recountItem(tenantId, ownerId, kind, options.dryRun ?? false);
      if (change) rebuilt.push(change);
    }
    return rebuilt;
  }

  /**
   * Every owner of a tenant with a count item or an endpoint (by a full table scan: for an operator's
   * recount, not for a request), sorted.
   */
  async listEndpointOwners(tenantId: string): Promise<string[]> {
    const prefix = ownerIndexTenantPrefix(tenantId);
    const owners = new Set<string>();
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.options.documentClient.send(
        new ScanCommand({
          TableName: this.options.tableName,
          FilterExpression:
            '(begins_with(pk, :prefix) AND sk IN (:person, :integration)) OR begins_with(gsi1pk, :prefix)',
          ProjectionExpression: 'pk, gsi1pk',
          ExpressionAttributeValues: {
            ':prefix': prefix,
            ':person': endpointCountKey(tenantId, '', 'person').sk,
            ':integration': endpointCountKey(tenantId, '', 'integration').sk,
          },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const ownerPk = typeof item.gsi1pk === 'string' ? item.gsi1pk : String(item.pk);
        owners.add(keySegmentValue(ownerPk.slice(prefix.length)));
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return [...owners].sort();
  }

  private async recountItem(
    tenantId: string,
    ownerId: string,
    kind: PrincipalKind,
    dryRun: boolean,
  ): Promise<CountRebuild | undefined> {
    const key = endpointCountKey(tenantId, ownerId, kind);
    for (let attempt = 1; ; attempt += 1) {
      const item = await this.options.store.countItemOf(tenantId, ownerId, kind);
      const before = item === undefined ? undefined : typeof item.count === 'number' ? item.count : 0;
      const closedAt = typeof item?.closedAt === 'string' ? item.closedAt : undefined;
      const counted = await this.countEndpointsCountedOn(tenantId, ownerId, kind);
      const after = counted === 0 && item?.closedAt === undefined ? undefined : counted;
      if (before === after) return undefined;
      const change: CountRebuild = {
        tenantId,
        ownerId,
        countItem: key.sk,
        before,
        after,
        ...(closedAt === undefined ? {} : { closedAt }),
      };
      if (dryRun) return change;
      try {
        await this.options.documentClient.send(this.countRewrite(key, item, after));
        return change;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        if (attempt === maxRecountAttempts) {
          throw new ConflictError(`The endpoints of ${ownerId} kept changing while recounting them; retry`, {
            cause: error,
          });
        }
      }
    }
  }

  /** How many endpoints the owner's count item of `kind` should count: listed, then confirmed one by one. */
  private async countEndpointsCountedOn(tenantId: string, ownerId: string, kind: PrincipalKind) {
    const { store } = this.options;
    const ownerPk = ownerIndexPk(tenantId, ownerId);
    const listed = [
      ...(await store.allOwnerEndpoints(ownerPk, 'person')),
      ...(await store.allOwnerEndpoints(ownerPk, 'integration')),
    ];
    return store.stillCountedOn(listed, kind);
  }

  /** Sets the count (or removes the item), only if the item still holds what `seen` read. */
  private countRewrite(
    key: Record<string, string>,
    seen: Record<string, unknown> | undefined,
    count: number | undefined,
  ): UpdateCommand | DeleteCommand {
    const names = { '#count': 'count' };
    const unchanged =
      seen === undefined
        ? { expression: 'attribute_not_exists(pk)', values: {} }
        : typeof seen.count === 'number'
          ? { expression: '#count = :seen', values: { ':seen': seen.count } }
          : { expression: 'attribute_exists(pk) AND attribute_not_exists(#count)', values: {} };
    if (count === undefined) {
      return new DeleteCommand({
        TableName: this.options.tableName,
        Key: key,
        // A person closed meanwhile keeps the item that holds the marker.
        ConditionExpression: `${unchanged.expression} AND attribute_not_exists(closedAt)`,
        ExpressionAttributeNames: names,
        ...(Object.keys(unchanged.values).length ? { ExpressionAttributeValues: unchanged.values } : {}),
      });
    }
    return new UpdateCommand({
      TableName: this.options.tableName,
      Key: key,
      UpdateExpression: 'SET #count = :count',
      ConditionExpression: unchanged.expression,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ':count': count, ...unchanged.values },
    });
  }
}
