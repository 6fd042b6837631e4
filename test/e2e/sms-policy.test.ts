// Where SMS codes may go (SMS_REGIONS) and how many (the region budget), through the local runtime: the SMS-pumping defences of the users function.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { phoneCodeKey } from '../../functions/shared/keys.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { NotFoundError } from '../../middleware/errors.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { drained, until } from '../email-worker/helpers.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

// A toolkit table of its own: the budgets count every SMS through it. Two SMS an hour per region.
const api = useLocalRuntime({
  as: adminUser,
  ownToolkitTable: true,
  sms: { regions: ['GB', 'GG', 'JE'], perRegionPerHour: 2 },
});
const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));

/** The users model over the runtime's table and key (the runtime sets ENCRYPTION_KEY when it starts). */
const usersModel = () =>
  new UsersModel(
    documents,
    testTableNames.app,
    new Encryptor({ keyProvider: new LocalKeyProvider({ key: process.env.ENCRYPTION_KEY ?? '' }) }),
  );

let numbersUsed = 0;
/** A GB mobile number (+44 7400 …) no other test of this file uses. */
const gbMobile = () => `+447400${String(100_000 + numbersUsed++).padStart(6, '0')}`;

/** The SMS files written to `phone` so far. */
function smsTo(phone: string): string[] {
  const dir = api.runtime().smsOutboxDir;
  return readdirSync(dir)
    .filter((file) => file.endsWith('.sms.txt'))
    .map((file) => readFileSync(join(dir, file), 'utf8'))
    .filter((content) => content.startsWith(`To: ${phone}\n`));
}

async function register(phone: string) {
  return api.request('POST', '/users', {
    body: { email: `sms-${randomUUID()}@example.com`, name: 'Sam', phone },
  });
}

describe('SMS_REGIONS: the regions whose numbers get SMS codes', () => {
  it('registers a number of an allowed region and sends it its code', async () => {
    const phone = gbMobile();
    expect((await register(phone)).status).toBe(201);
    await until(() => (smsTo(phone).length === 1 ? true : undefined));
  });

  it('refuses a number of any other region with a 400 on body.phone naming the allowed ones, storing and sending nothing', async () => {
    const phone = '+14155552671';
    const email = `us-${randomUUID()}@example.com`;
    const response = await api.request('POST', '/users', { body: { email, name: 'Sam', phone } });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      errors: [
        {
          field: 'body.phone',
          message: 'Must be a mobile phone number of a region SMS codes are sent to (GB, GG, JE)',
        },
      ],
    });
    await expect(usersModel().findByEmail(email)).rejects.toBeInstanceOf(NotFoundError);
    await drained(api.runtime());
    expect(smsTo(phone)).toEqual([]);
  });

  it('sends no new code to a number stored before its region left SMS_REGIONS: 409, no code issued', async () => {
    // Registered through the model, as a user registered before SMS_REGIONS left the US out.
    const user = await usersModel().register({
      email: `before-${randomUUID()}@example.com`,
      name: 'Early',
      phone: '+14155552671',
    });
    const refused = await api.request('POST', `/users/${user.id}/phone-code`, { token: null });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ detail: 'SMS codes are no longer sent to numbers of US' });
    const { Item } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: phoneCodeKey(user.id), ConsistentRead: true }),
    );
    expect(Item).toBeUndefined();
    await drained(api.runtime());
    expect(smsTo('+14155552671')).toEqual([]);
  });
});

describe("a region's SMS budget (SMS_PER_REGION_PER_HOUR)", () => {
  /** A Guernsey mobile number (+44 7781 …): no other test of this file spends Guernsey's budget. */
  let guernseyUsed = 0;
  const ggMobile = () => `+447781${String(100_000 + guernseyUsed++).padStart(6, '0')}`;

  it('once spent, registers the next number without its code, and a requested code is a 429 with Retry-After', async () => {
    const sent = [ggMobile(), ggMobile()];
    for (const phone of sent) expect((await register(phone)).status).toBe(201);
    const unsent = ggMobile();
    const registered = await register(unsent);
    expect(registered.status).toBe(201);
    const id = (registered.body as { id: string }).id;
    await drained(api.runtime());
    expect(sent.map((phone) => smsTo(phone).length)).toEqual([1, 1]);
    expect(smsTo(unsent)).toEqual([]);
    const refused = await api.request('POST', `/users/${id}/phone-code`, { token: null });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({
      detail: "Too many codes were sent to this phone number's region this hour; try again later",
    });
    // Two an hour: the next one in at most half an hour.
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(1700);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(1800);
    const { Item } = await documents.send(
      new GetCommand({ TableName: testTableNames.app, Key: phoneCodeKey(id), ConsistentRead: true }),
    );
    expect(Item).toBeUndefined();
    // Another region's budget is its own.
    const other = gbMobile();
    expect((await register(other)).status).toBe(201);
    await until(() => (smsTo(other).length === 1 ? true : undefined));
  });
});
