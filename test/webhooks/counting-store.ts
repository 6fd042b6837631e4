// The webhook store the endpoint-count tests share, on the toolkit table every test file shares (a cap of 3
// per owner), and the M2M clients they register, whose endpoints must go after each test: left there, they
// would receive other files' booking events and keep those files' webhook queues from draining.
import { inject } from 'vitest';
import { createFunctionEncryptor } from '../../functions/shared/encryption.js';
import { readEnvironment } from '../../functions/shared/environment.js';
import { webhookSecretKeyContextFields } from '../../functions/shared/key-purposes.js';
import { WebhookStore } from '../../functions/shared/webhook-store.js';
import { WebhookSubscriptions } from '../../functions/shared/webhook-subscriptions.js';
import type { Principal } from '../../middleware/auth/principal.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { testPrincipal } from '../helpers/principals.js';
import { testTableNames } from '../helpers/tables.js';

const newDocumentClient = () =>
  createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));
export const documentClient = newDocumentClient();
export const maxEndpointsPerOwner = 3;
const storeOver = (client: typeof documentClient) =>
  new WebhookStore({
    documentClient: client,
    tableName: testTableNames.toolkit,
    encryptor: createFunctionEncryptor(readEnvironment(), undefined, webhookSecretKeyContextFields),
    maxEndpointsPerOwner,
  });
export const store = storeOver(documentClient);
/** Which endpoints the fan-out finds for an event, on the same table. */
export const subscriptions = new WebhookSubscriptions({ documentClient, tableName: testTableNames.toolkit });

/** The same store over a DynamoDB client of its own, as another Lambda instance has it. */
export const storeOnAnotherInstance = () => storeOver(newDocumentClient());
const endpointInput = { url: 'https://hooks.example.com/h', eventTypes: ['booking.created'] } as const;

/** Registers an endpoint for `principal`. */
export const register = (principal: Principal) => store.createEndpoint(principal, endpointInput);

const machines: Principal[] = [];

/** An M2M client whose client id is `id`, whose endpoints {@link deleteMachineEndpoints} deletes. */
export function machineWithId(id: string, tenantId?: string): Principal {
  const machine = testPrincipal({ id, isM2M: true, tenantId });
  machines.push(machine);
  return machine;
}

/**
 * Deletes the endpoints of every machine made since the last call (in `afterEach`), after `beforeDelete`
 * for each (a recount, when a failed test may have left counts that would refuse the deletes).
 */
export async function deleteMachineEndpoints(
  beforeDelete: (machine: Principal) => Promise<unknown> = async () => undefined,
): Promise<void> {
  for (const machine of machines.splice(0)) {
    await beforeDelete(machine);
    for (const { id } of (await store.listOwnedEndpoints(machine, 100)).items) {
      await store.deleteEndpoint(id, machine);
    }
  }
}
