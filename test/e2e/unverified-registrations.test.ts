// Registrations whose email is not verified in time lapse: the user and its email claim carry expiresAt,
// read as absent past it (TTL deletes them days later), and the address can be registered again. The
// functions run in this process, so moving Date moves their clock.
import { randomInt, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { BookingsModel } from '../../functions/bookings/bookings-model.js';
import { sendDirectly } from '../../functions/shared/audited-change.js';
import { emailClaimKey, userKey } from '../../functions/shared/keys.js';
import { createVerificationLink } from '../../functions/shared/verification-link.js';
import { UsersModel } from '../../functions/users/users-model.js';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { decodedEml, emailsTo, until } from '../email-worker/helpers.js';
import { bookingDay } from '../helpers/booking-times.js';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';
import { testTableNames } from '../helpers/tables.js';

// A toolkit table of its own: rate limits and circuits written at a clock two days ahead stay here.
const api = useLocalRuntime({ as: adminUser, ownToolkitTable: true });
const documents = createDocumentClient(createDynamoDbClient({ endpoint: inject('dynamoDbEndpoint') }));

const hour = 3_600_000;
/** UNVERIFIED_USER_TTL_HOURS's default, which the runtime's users function runs with. */
const verificationWindowMs = 48 * hour;

interface Registered {
  id: string;
  email: string;
  name: string;
  phone?: string;
  createdAt: string;
  expiresAt?: string;
  emailVerifiedAt?: string;
}

interface Problem {
  status: number;
  code: string;
  detail: string;
}

/**
 * Moves the clock of this process (and so of the functions) `ms` ahead; it keeps running from there.
 * Only Date: the runtime's timers and sockets run as usual.
 */
function clockAhead(ms: number): void {
  if (!vi.isFakeTimers()) vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(Date.now() + ms);
}

afterEach(() => {
  vi.useRealTimers();
});

/** An admin token minted at the current clock: one minted before the clock moved has expired by then. */
const adminToken = () => api.token(adminUser);

const uniqueEmail = () => `lapse-${randomUUID()}@corp.example.com`;
/** A valid US number (libphonenumber accepts 415-555-xxxx); the file's own toolkit table holds its budget. */
const uniquePhone = () => `+1415555${String(randomInt(1000, 10_000))}`;

async function register(body: { email: string; name: string; phone?: string }) {
  return api.request('POST', '/users', { body, token: null });
}

async function registered(body: { email: string; name: string; phone?: string }): Promise<Registered> {
  const response = await register(body);
  expect(response.status).toBe(201);
  return response.body as Registered;
}

/** The path and query of the verification link sent for `userId`, once `emailCount` emails reached `email`. */
async function verificationPath(email: string, emailCount: number, userId: string): Promise<string> {
  const messages = await emailsTo(api.runtime(), email, emailCount);
  const raw = messages.map((message) => decodedEml(message.raw)).join('\n');
  const link = raw.match(
    new RegExp(`http://127\\.0\\.0\\.1:\\d+/users/${userId}/verify\\?expires=\\d+&signature=[\\w-]{43}`),
  )?.[0];
  if (!link) throw new Error(`no verification link for ${userId}`);
  const url = new URL(link);
  return `${url.pathname}${url.search}`;
}

/** The code of the SMS sent to `phone`, read from the worker's outbox. */
function smsCode(phone: string): Promise<string> {
  return until(() => {
    const dir = api.runtime().smsOutboxDir;
    const sms = readdirSync(dir)
      .filter((file) => file.endsWith('.sms.txt'))
      .map((name) => readFileSync(join(dir, name), 'utf8'))
      .find((content) => content.startsWith(`To: ${phone}\n`));
    return sms ? (/code is (\d{6})\./.exec(sms)?.[1] as string) : undefined;
  });
}

async function storedItem(key: { pk: string; sk: string }) {
  const { Item } = await documents.send(
    new GetCommand({ TableName: testTableNames.app, Key: key, ConsistentRead: true }),
  );
  return Item;
}

/** The user item and its email claim, as stored. */
async function storedUserAndClaim(id: string) {
  const user = await storedItem(userKey(id));
  const claim = user ? await storedItem(emailClaimKey(String(user.emailIndex))) : undefined;
  return { user, claim };
}

/** Every user the admin list shows, page after page. */
async function listedUserIds(token: string): Promise<Set<string>> {
  const ids = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < 1000; page += 1) {
    const query = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const response = await api.request('GET', `/admin/users?${query}`, { token });
    expect(response.status).toBe(200);
    const body = response.body as { items: { id: string }[]; nextCursor?: string };
    for (const item of body.items) ids.add(item.id);
    cursor = body.nextCursor;
    if (!cursor) return ids;
  }
  throw new Error('the admin list did not end');
}

/** The users model over the runtime's table and key, as the users function builds it. */
const runtimeUsersModel = (unverifiedUserTtlSec?: number) =>
  new UsersModel(
    documents,
    testTableNames.app,
    new Encryptor({ keyProvider: new LocalKeyProvider({ key: process.env.ENCRYPTION_KEY ?? '' }) }),
    undefined,
    unverifiedUserTtlSec === undefined ? {} : { unverifiedUserTtlSec },
  );

describe('an unverified registration', () => {
  it('carries expiresAt, the end of the 48-hour window, on the user and its email claim', async () => {
    const user = await registered({ email: uniqueEmail(), name: 'Vera' });
    const expiresAt = Date.parse(user.createdAt) - (Date.parse(user.createdAt) % 1000) + verificationWindowMs;
    expect(user.expiresAt).toBe(new Date(expiresAt).toISOString());

    const { user: item, claim } = await storedUserAndClaim(user.id);
    expect(item?.expiresAt).toBe(expiresAt / 1000);
    expect(claim).toMatchObject({ userId: user.id, expiresAt: expiresAt / 1000 });
    const read = await api.request('GET', `/users/${user.id}`);
    expect(read.body).toMatchObject({ id: user.id, expiresAt: user.expiresAt });
  });

  it('lapses: past its window it is absent on every route, and in the admin list, before TTL deletes it', async () => {
    const phone = uniquePhone();
    const squatter = await registered({ email: uniqueEmail(), name: 'Mallory', phone });
    // A verified phone does not keep a registration: the window is the email's.
    const code = await smsCode(phone);
    const phoneVerified = await api.request('POST', `/users/${squatter.id}/verify-phone`, {
      body: { code },
      token: null,
    });
    expect(phoneVerified.status).toBe(200);
    // A user registered before registrations lapsed: neither item has expiresAt, and nothing adds one.
    const earlier = await registered({ email: uniqueEmail(), name: 'Olga' });
    const earlierItems = await storedUserAndClaim(earlier.id);
    for (const item of [earlierItems.user, earlierItems.claim]) {
      await documents.send(
        new UpdateCommand({
          TableName: testTableNames.app,
          Key: { pk: item?.pk, sk: item?.sk },
          UpdateExpression: 'REMOVE expiresAt',
        }),
      );
    }

    clockAhead(verificationWindowMs + 60_000);
    const token = await adminToken();
    const expectNotFound = async (method: string, path: string, body?: unknown) => {
      const response = await api.request(method, path, { token, ...(body === undefined ? {} : { body }) });
      expect({ route: `${method} ${path}`, status: response.status }).toEqual({
        route: `${method} ${path}`,
        status: 404,
      });
    };
    await expectNotFound('GET', `/users/${squatter.id}`);
    await expectNotFound('POST', `/users/${squatter.id}/phone-code`);
    await expectNotFound('POST', `/users/${squatter.id}/verification-email`);
    await expectNotFound('POST', `/users/${squatter.id}/verify-phone`, { code: '123456' });
    await expectNotFound('DELETE', `/admin/users/${squatter.id}`);
    // Bookings ask the users service, which answers 404: the lapsed id is an unknown user.
    const at = bookingDay(5);
    const booking = await api.request('POST', '/bookings', {
      token,
      body: { roomId: `room-${randomUUID()}`, userId: squatter.id, start: at(9), end: at(10) },
    });
    expect(booking.status).toBe(400);
    expect(booking.body).toMatchObject({ errors: [{ field: 'body.userId', message: 'No such user' }] });

    const listed = await listedUserIds(token);
    expect(listed.has(squatter.id)).toBe(false);
    expect(listed.has(earlier.id)).toBe(true);
    expect((await api.request('GET', `/users/${earlier.id}`, { token })).status).toBe(200);
    // TTL has not run (dynalite never runs it; DynamoDB takes days): the items are there, unread.
    expect((await storedUserAndClaim(squatter.id)).user).toBeDefined();
  });
});

describe('address squatting', () => {
  it('answers 409 within the window, saying when the claim lapses; then the owner registers and verifies their own account', async () => {
    const email = uniqueEmail();
    const squatter = await registered({ email, name: 'Alice', phone: uniquePhone() });

    const owner = await register({ email, name: 'Alice Owner' });
    expect(owner.status).toBe(409);
    expect((owner.body as Problem).detail).toBe(
      `This email is registered but not verified yet; unless it is verified first, the registration lapses at ${squatter.expiresAt} and the email can be registered again. If you did not register it, do not follow the verification link sent to it.`,
    );
    const squattersLink = await verificationPath(email, 2, squatter.id);

    clockAhead(verificationWindowMs + 60_000);
    const ownerPhone = uniquePhone();
    const retried = await register({ email, name: 'Alice Owner', phone: ownerPhone });
    expect(retried.status).toBe(201);
    const ownAccount = retried.body as Registered;
    const { claim } = await storedUserAndClaim(ownAccount.id);
    expect(claim?.userId).toBe(ownAccount.id);

    // The squatter's link, even opened or posted now, verifies nothing: it ran out with the registration.
    for (const method of ['GET', 'POST']) {
      const late = await api.request(method, squattersLink, { token: null });
      expect(late.status, method).toBe(410);
      expect((late.body as Problem).detail).toBe(
        'The verification link has expired, and the registration with it; register again',
      );
    }

    const ownLink = await verificationPath(email, 4, ownAccount.id);
    expect((await api.request('POST', ownLink, { token: null })).status).toBe(200);
    const token = await adminToken();
    const read = await api.request('GET', `/users/${ownAccount.id}`, { token });
    expect(read.body).toMatchObject({ name: 'Alice Owner', phone: ownerPhone });
    expect(read.body).toHaveProperty('emailVerifiedAt');
    expect(read.body).not.toHaveProperty('expiresAt');
    expect((await api.request('GET', `/users/${squatter.id}`, { token })).status).toBe(404);
  });
});

describe('verifying the email', () => {
  it('removes expiresAt from the user and its claim, so the registration outlives the window', async () => {
    const email = uniqueEmail();
    const user = await registered({ email, name: 'Vera' });
    expect((await storedUserAndClaim(user.id)).claim?.expiresAt).toBeTypeOf('number');

    const link = await verificationPath(email, 2, user.id);
    expect((await api.request('POST', link, { token: null })).status).toBe(200);
    const { user: item, claim } = await storedUserAndClaim(user.id);
    expect(item).not.toHaveProperty('expiresAt');
    expect(claim).toEqual({ ...emailClaimKey(String(item?.emailIndex)), userId: user.id });

    clockAhead(verificationWindowMs + 60_000);
    const read = await api.request('GET', `/users/${user.id}`, { token: await adminToken() });
    expect(read.status).toBe(200);
    expect(read.body).not.toHaveProperty('expiresAt');
    const again = await register({ email, name: 'Vera' });
    expect(again.status).toBe(409);
    expect((again.body as Problem).detail).toBe('A user with this email already exists');
  });

  it('refuses a current link of a lapsed registration with 410, opened or posted, and verifies nothing', async () => {
    const user = await registered({ email: uniqueEmail(), name: 'Vera' });
    // A link sent again 40 hours in (the runtime's own secret), current until well past the window.
    const link = new URL(
      createVerificationLink({
        baseUrl: api.runtime().url,
        userId: user.id,
        secret: process.env.VERIFICATION_LINK_SECRET ?? '',
        now: Date.now() + 40 * hour,
      }).url,
    );
    clockAhead(verificationWindowMs + 60_000);
    for (const method of ['GET', 'POST']) {
      const refused = await api.request(method, `${link.pathname}${link.search}`, { token: null });
      expect(refused.status, method).toBe(410);
      expect((refused.body as Problem).detail).toBe(
        'The registration lapsed before its email was verified; register again',
      );
    }
    expect((await storedUserAndClaim(user.id)).user).not.toHaveProperty('emailVerifiedAt');
  });

  it('cannot verify a lapsed registration, even on a clock behind the one that gave its email away', async () => {
    // A one-hour window (UNVERIFIED_USER_TTL_HOURS=1).
    const users = runtimeUsersModel(3600);
    const email = uniqueEmail();
    const registeredAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const first = await users.register({ email, name: 'Vera' }, registeredAt);
    const lapsesAt = registeredAt.getTime() + hour;
    expect(first.expiresAt).toBe(new Date(lapsesAt).toISOString());

    await expect(users.verifyEmail(first.id, sendDirectly, () => new Date(lapsesAt))).rejects.toMatchObject({
      statusCode: 410,
      message: 'The registration lapsed before its email was verified; register again',
    });
    const second = await users.register({ email, name: 'Vera Two' }, new Date(lapsesAt));
    // A function whose clock is a second behind still sees the first registration in its window.
    await expect(
      users.verifyEmail(first.id, sendDirectly, () => new Date(lapsesAt - 1000)),
    ).rejects.toMatchObject({
      statusCode: 410,
    });
    const firstItems = await storedUserAndClaim(first.id);
    expect(firstItems.user).not.toHaveProperty('emailVerifiedAt');
    expect(firstItems.claim).toMatchObject({ userId: second.id, expiresAt: lapsesAt / 1000 + 3600 });

    const verified = await users.verifyEmail(second.id, sendDirectly, () => new Date(lapsesAt + 1000));
    expect(verified.emailVerifiedAt).toBe(new Date(lapsesAt + 1000).toISOString());
    expect((await storedUserAndClaim(second.id)).claim).not.toHaveProperty('expiresAt');
  });

  it('refuses a click that read the registration open but writes once it has lapsed (410), verifying nothing', async () => {
    const users = runtimeUsersModel(3600);
    const registeredAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const user = await users.register({ email: uniqueEmail(), name: 'Vera' }, registeredAt);
    const lapsesAt = registeredAt.getTime() + hour;
    // The user is read a second before the lapse; the transaction goes out at it.
    const clockReadings = [new Date(lapsesAt - 1000), new Date(lapsesAt)];
    const clock = () => clockReadings.shift() ?? new Date(lapsesAt);
    await expect(users.verifyEmail(user.id, sendDirectly, clock)).rejects.toMatchObject({
      statusCode: 410,
      message: 'The registration lapsed before its email was verified; register again',
    });
    expect(clockReadings).toEqual([]);
    const stored = await storedUserAndClaim(user.id);
    expect(stored.user).not.toHaveProperty('emailVerifiedAt');
    expect(stored.user).toMatchObject({ expiresAt: lapsesAt / 1000 });
    expect(stored.claim).toMatchObject({ userId: user.id, expiresAt: lapsesAt / 1000 });
  });
});

describe('verifying the phone', () => {
  it('answers a wrong guess at a code that outlived its lapsed registration with 404, not 400', async () => {
    const users = runtimeUsersModel(3600);
    const registeredAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const user = await users.register(
      { email: uniqueEmail(), name: 'Vera', phone: uniquePhone() },
      registeredAt,
    );
    // Issued five minutes before the lapse: the code lives ten.
    const lapsesAt = registeredAt.getTime() + hour;
    const { code } = await users.issuePhoneCode(user.id, { now: new Date(lapsesAt - 5 * 60_000) });
    const wrong = code === '000000' ? '000001' : '000000';
    const afterLapse = new Date(lapsesAt + 60_000);
    await expect(users.verifyPhone(user.id, wrong, afterLapse)).rejects.toMatchObject({ statusCode: 404 });
    await expect(users.verifyPhone(user.id, code, afterLapse)).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('POST /users/{id}/verification-email', () => {
  it('sends a link that expires with the registration, never after it', async () => {
    const user = await registered({ email: uniqueEmail(), name: 'Vera' });
    clockAhead(40 * hour);
    const resent = await api.request('POST', `/users/${user.id}/verification-email`, { token: null });
    expect(resent.status).toBe(202);
    expect(resent.body).toEqual({ id: user.id, expiresAt: user.expiresAt });
  });
});

describe('BookingsModel', () => {
  it('books nobody whose registration lapsed after the users service answered', async () => {
    const users = runtimeUsersModel();
    const user = await users.register({ email: uniqueEmail(), name: 'Vera' });
    const bookings = new BookingsModel(documents, testTableNames.app);
    const at = bookingDay(5);
    await expect(
      bookings.create(
        { roomId: `room-${randomUUID()}`, userId: user.id, start: new Date(at(9)), end: new Date(at(10)) },
        new Date(Date.parse(user.expiresAt as string)),
      ),
    ).rejects.toMatchObject({ statusCode: 400, message: 'Unknown user' });
  });
});
