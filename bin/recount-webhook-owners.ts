import { parseArgs } from 'node:util';
import { defaultTenantId } from '../functions/shared/tenant.js';
import { type CountRebuild, WebhookCountRebuilder } from '../functions/shared/webhook-count-rebuild.js';
import { WebhookStore } from '../functions/shared/webhook-store.js';
import { createDocumentClient, createDynamoDbClient } from '../middleware/store/client.js';
import { HelpRequested, isCommand, runCommand } from './command.js';

const usage = `Usage:
  npx tsx bin/recount-webhook-owners.ts --table <toolkit table> [--tenant <id>] [--owner <id>]... [--dry-run]

Options:
  --table <name>     the toolkit table (required)
  --tenant <id>      the tenant                                               default ${defaultTenantId}
  --owner <id>       an owner (user sub or M2M client id) to recount; repeat it.
                     Without it, every owner with a count item or an endpoint in the tenant (a table scan)
  --dry-run          print what would change, change nothing
Region and endpoint: AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB (or AWS_ENDPOINT_URL), and the usual credentials.
`;

export interface RecountArguments {
  readonly table: string;
  readonly tenantId: string;
  /** Empty: every owner of the tenant. */
  readonly owners: readonly string[];
  readonly dryRun: boolean;
}

/** What a command line asks for; throws with the usage text when it is wrong. */
export function parseRecountArguments(args: readonly string[]): RecountArguments {
  let values: {
    table?: string;
    tenant?: string;
    owner?: string[];
    'dry-run'?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        table: { type: 'string' },
        tenant: { type: 'string' },
        owner: { type: 'string', multiple: true },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
  }
  if (values.help) throw new HelpRequested(usage);
  if (values.table === undefined || values.table.trim() === '') {
    throw new Error(`--table (the toolkit table) is required\n\n${usage}`);
  }
  if (values.tenant !== undefined && values.tenant.trim() === '') {
    throw new Error(`--tenant must not be empty\n\n${usage}`);
  }
  const owners = values.owner ?? [];
  if (owners.some((owner) => owner.trim() === '')) throw new Error(`--owner must not be empty\n\n${usage}`);
  return {
    table: values.table,
    tenantId: values.tenant ?? defaultTenantId,
    owners: [...new Set(owners)],
    dryRun: values['dry-run'] ?? false,
  };
}

const shown = (count: number | undefined) => (count === undefined ? '(no item)' : String(count));

/** One line per changed count item: `<tenant>/<owner> <item>: before → after`. */
export function describeRebuild(change: CountRebuild): string {
  const marker = change.closedAt === undefined ? '' : ` (closedAt ${change.closedAt} kept)`;
  return `${change.tenantId}/${change.ownerId} ${change.countItem}: ${shown(change.before)} → ${shown(change.after)}${marker}`;
}

/** Recounts the owners asked for (every owner of the tenant without any), printing each change to `print`. */
export async function recountOwners(
  rebuilder: WebhookCountRebuilder,
  request: Omit<RecountArguments, 'table'>,
  print: (line: string) => void,
): Promise<CountRebuild[]> {
  const owners = request.owners.length
    ? request.owners
    : await rebuilder.listEndpointOwners(request.tenantId);
  const changes: CountRebuild[] = [];
  for (const owner of owners) {
    for (const change of await rebuilder.recountOwner(request.tenantId, owner, { dryRun: request.dryRun })) {
      print(describeRebuild(change));
      changes.push(change);
    }
  }
  const verb = request.dryRun ? 'would change (dry run, nothing written)' : 'changed';
  print(`${owners.length} owner(s) checked, ${changes.length} count item(s) ${verb}`);
  return changes;
}

// Run as a command (not when a test imports it).
if (isCommand(import.meta.url)) {
  await runCommand(async () => {
    const { table, ...request } = parseRecountArguments(process.argv.slice(2));
    const endpoint = process.env.AWS_ENDPOINT_URL_DYNAMODB ?? process.env.AWS_ENDPOINT_URL;
    const documentClient = createDocumentClient(
      createDynamoDbClient({
        ...(endpoint ? { endpoint } : {}),
        ...(process.env.AWS_REGION ? { region: process.env.AWS_REGION } : {}),
      }),
    );
    const store = new WebhookStore({ documentClient, tableName: table });
    const rebuilder = new WebhookCountRebuilder({ store, documentClient, tableName: table });
    await recountOwners(rebuilder, request, console.log);
  });
}
