import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { adminUser, useLocalRuntime } from '../helpers/runtime.js';

// A human admin may call every route; test/auth covers who else may.
const api = useLocalRuntime({ as: adminUser });
const uniqueEmail = () => `user-${randomUUID()}@example.com`;

interface ProblemBody {
  status: number;
  code: string;
  detail: string;
  errors?: { field: string; message: string }[];
}

/** A 400 problem with `message` on `body.name` alone, and nothing stored: the email registers afterwards. */
async function expectNameRefused(name: string, message: string) {
  const email = uniqueEmail();
  const response = await api.request('POST', '/users', { body: { email, name } });
  expect(response.status).toBe(400);
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  expect((response.body as ProblemBody).code).toBe('VALIDATION_FAILED');
  expect((response.body as ProblemBody).errors).toEqual([{ field: 'body.name', message }]);
  expect((await api.request('POST', '/users', { body: { email, name: 'Ada' } })).status).toBe(201);
}

describe('users API', () => {
  it('registers a user, answering 201 with its Location, and reads it back there', async () => {
    const email = uniqueEmail();
    const created = await api.request('POST', '/users', { body: { email, name: 'Alice' } });
    expect(created.status).toBe(201);
    const user = created.body as { id: string; email: string; name: string; createdAt: string };
    expect(user).toMatchObject({ email, name: 'Alice' });
    expect(Date.parse(user.createdAt)).not.toBeNaN();
    expect(created.headers.get('location')).toBe(`/users/${user.id}`);

    const read = await api.request('GET', created.headers.get('location') as string);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(user);
  });

  it.each([
    "Zoë O'Brien-Lefèvre",
    'José María',
    '李小龍',
    'Dr. Ada Lovelace',
    'J. R. R. Tolkien',
    'Gal·la Puig',
    'ジョン・スミス',
    'مهدی\u200cزاده',
    'צ׳רלי כהן',
    'חז״ל',
    'メアリー・スミス',
    '迈克尔·杰克逊',
    '山田・太郎',
    'Kaʻiulani Cleghorn',
    "Ngũgĩ wa Thiong'o",
    'Zoë Saldaña',
    'Ольга',
    'Σωκράτης',
    '김민준',
    'ʿAbd al-ʿAziz',
    'Marcel·lí Paŀlarès',
    'Ʒoe Ʒara',
    'Kaʼiulani',
    'Saʾid',
    // Ojibwe in syllabics, with the w-dot (ᐧ) that joins no other script's letters.
    'ᐊᓂᔑᓈᐯᐧᒧᐎᓐ',
  ])('accepts the name %s', async (name) => {
    const created = await api.request('POST', '/users', { body: { email: uniqueEmail(), name } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name });
  });

  it.each([
    ['decomposed (NFD)', 'Zoe\u0308 Decomposed', 'Zoë Decomposed'],
    ['an ideographic space', '山田\u3000太郎', '山田 太郎'],
    ['a no-break space', 'Ana\u00a0Silva', 'Ana Silva'],
    ['a run of spaces', ' Ana \u2003\u00a0 Silva\u3000', 'Ana Silva'],
  ])('stores a name %s as NFC with one ASCII space', async (_what, name, stored) => {
    const created = await api.request('POST', '/users', { body: { email: uniqueEmail(), name } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: stored });
    const read = await api.request('GET', `/users/${(created.body as { id: string }).id}`);
    expect(read.body).toMatchObject({ name: stored });
  });

  it('counts the 100-character limit after NFC', async () => {
    // 100 letters with an accent, 200 code points decomposed.
    const decomposed = 'e\u0301'.repeat(100);
    const created = await api.request('POST', '/users', { body: { email: uniqueEmail(), name: decomposed } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'é'.repeat(100) });
  });

  it.each([
    ['a link', 'Ada, your account is locked: https://evil.example/unlock'],
    ['a bare domain', 'Visit evil.com now'],
    ['a trailing separator', 'Ada-'],
    ['a phone number', 'Call 555 0100 now'],
    ['markup', 'Ada <b>'],
    ['only punctuation', "'-."],
    ['digits', 'Ada 2nd'],
    ['a domain joined by a middle dot', 'evil.com·Ada'],
    ['a middle dot between letters other than l', 'evil·com'],
    ['a katakana middle dot between Latin letters', 'www・evil・com'],
    ['a katakana middle dot between full-width Latin letters', 'ｅｖｉｌ・ｃｏｍ'],
    ['a zero-width non-joiner between Latin letters', 'pay\u200cpal'],
    ['a geresh after a Latin letter', 'evil\u05f3com'],
    ['a joiner at the start', '\u200cAda'],
    ['a joiner at the end', 'Ada\u30fb'],
    ['two joiners in a row', 'Gal··la'],
    ['a zero-width joiner', 'Ada\u200dLovelace'],
    ['a bidi override', 'Ada\u202eecalevoL'],
    ['a bidi isolate', 'Ada \u2066Lovelace\u2069'],
    ['a CR-LF', 'Ada\r\nBcc: x@example.com'],
    ['a line feed between words', 'Ada\nLovelace'],
  ])(
    'refuses a name with %s (it goes into emails to an unproven address), storing nothing',
    async (_what, name) => {
      await expectNameRefused(
        name,
        "Must be a name: words of letters joined by single spaces, ' ’ - · ・ ׳ ״ or a zero-width non-joiner; no digits, links or markup",
      );
    },
  );

  const hangulFiller = '\u3164';
  it.each([
    ['only a Hangul filler', hangulFiller, 'Must not contain invisible characters'],
    [
      'Hangul fillers that push a message out of sight',
      `Ada${hangulFiller.repeat(30)}Your account is locked Reply with your password`,
      'Must not contain invisible characters',
    ],
    ['variation selectors', 'Ada\u{e0100}\u{e0101}\u{e0102}', 'Must not contain invisible characters'],
    ['a combining grapheme joiner', 'Ada\u034fLovelace', 'Must not contain invisible characters'],
    ['an emoji variation selector', 'Ada\ufe0f', 'Must not contain invisible characters'],
    ['a Khmer inherent vowel', 'Ada\u17b4', 'Must not contain invisible characters'],
    ['the other Khmer inherent vowel', 'Ada\u17b5', 'Must not contain invisible characters'],
    ['only a halfwidth Hangul filler', '\uffa0', 'Must not contain invisible characters'],
    ['a Hangul choseong filler', 'Ada \u115f', 'Must not contain invisible characters'],
    [
      'Lisu tone letters for dots',
      'Verify now at bulwarkꓸsupportꓸcom',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a modifier letter colon and katakana for slashes',
      'httpsːノノevilꓸcom',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'Latin tone letters for digits and a Lisu colon',
      'Wire ƼOO dollars toꓽ bulwarkꓸpay',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'Latin tone letters for a phone number',
      'Call ƧlƼ ƼƼƼ OlOO now',
      'Must not contain letters that read as punctuation or digits',
    ],
    ['an NKo lajanyalan', 'AdaߺLovelace', 'Must not contain letters that read as punctuation or digits'],
    ['a sinological dot', 'evil\ua78fcom', 'Must not contain letters that read as punctuation or digits'],
    [
      'a Catalan l with a middle dot before no l',
      'paypa\u0140com',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a click letter for an exclamation mark',
      'Hello\u01c3',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'click letters for bars',
      'Room \u01c0\u01c0',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'glottal stops for question marks',
      'Ada\u0294\u0294\u0294',
      'Must not contain letters that read as punctuation or digits',
    ],
    ['a capital glottal stop', 'Who\u0241', 'Must not contain letters that read as punctuation or digits'],
    [
      'tone letters for digits',
      'Call \u01bb\ua72c',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'mathematical bold letters',
      '\u{1d429}\u{1d41a}\u{1d432}\u{1d429}\u{1d41a}\u{1d425}',
      'Must not contain letters that read as punctuation or digits',
    ],
    // One letter of each kind alone, so each stands or falls by its own entry in the rule.
    ['a Latin tone letter five', '\u01bcOO', 'Must not contain letters that read as punctuation or digits'],
    [
      'Latin tone letters six',
      'Call \u0184\u0184\u0184',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'Latin tone letters three',
      'Call \ua72a\ua72a',
      'Must not contain letters that read as punctuation or digits',
    ],
    ['a small glottal stop', 'Who\u0242', 'Must not contain letters that read as punctuation or digits'],
    [
      'mathematical bold Greek letters',
      '\u{1d6b7}\u{1d6ba}\u{1d6bb}',
      'Must not contain letters that read as punctuation or digits',
    ],
    // Cyrillic words, so no Latin letter brings the mixed-script rule in: the deny rule alone decides.
    ['a modifier letter colon', 'Ольга\u02d0', 'Must not contain letters that read as punctuation or digits'],
    [
      'a modifier letter double prime',
      'Ольга\u02ba',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a modifier letter reversed comma',
      'Ольга\u02bd',
      'Must not contain letters that read as punctuation or digits',
    ],
    ['a Lisu colon alone', 'to\ua4fd', 'Must not contain letters that read as punctuation or digits'],
    // Whole-word Cyrillic look-alikes of Latin domains, joined by another script's letters drawn as dots and strokes.
    [
      'a syllabics middle dot between Cyrillic letters',
      '\u0420\u0410\u0423\u0420\u0410\u04c0\u1427\u0421\u041e\u041c',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'syllabics middle dots in a Cyrillic www domain',
      '\u051c\u051c\u051c\u1427\u0415\u0425\u0410\u041c\u0420\u04c0\u0415\u1427\u0421\u041e\u041c',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a syllabics middle dot between Latin letters',
      'evil\u1427com',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a syllabics raised dot',
      '\u0415\u0425\u0410\u041c\u0420\u04c0\u0415\u18df\u0421\u041e\u041c',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a syllabics final acute for a slash',
      '\u0421\u041e\u041c\u141f\u0410',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a syllabics final double acute for two slashes',
      '\u0421\u041e\u041c\u1425\u0410',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a Devanagari high spacing dot',
      '\u0421\u041e\u041c\u0971\u0410',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'an Arabic baseline dot',
      '\u0421\u041e\u041c\u0887\u0410',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a syllabics middle dot in a second word, after a syllabics name',
      '\u140a\u1427\u1401 \u0421\u041e\u041c\u1427\u0410',
      'Must not contain letters that read as punctuation or digits',
    ],
    ['a tone letter dot slash', 'Ольга\ua718', 'Must not contain letters that read as punctuation or digits'],
    [
      'a superscript triangular colon',
      'Ольга\u{10781}',
      'Must not contain letters that read as punctuation or digits',
    ],
    [
      'a Cyrillic а in a Latin word',
      'p\u0430ypal',
      "A word must not mix Latin letters with another script's",
    ],
    [
      'a Cyrillic а in a second Latin word',
      'Ada p\u0430ypal',
      "A word must not mix Latin letters with another script's",
    ],
    [
      'a Cyrillic а after a non-ASCII Latin letter',
      '\u00e9\u0430',
      "A word must not mix Latin letters with another script's",
    ],
    [
      'katakana for slashes in a Latin word',
      'httpsノノevil',
      "A word must not mix Latin letters with another script's",
    ],
  ])(
    'refuses a name with %s (letters that hide or fake text in an email), storing nothing',
    async (_what, name, message) => {
      await expectNameRefused(name, message);
    },
  );

  it('judges a name of combining marks by its length alone once it is too long', async () => {
    // A name that fails the pattern only at its end, the shape that made the old pattern quadratic (as long as 8 KiB allows).
    const marks = (count: number) => `a${'\u0301'.repeat(count)}!`;
    const tooLong = await api.request('POST', '/users', {
      body: { email: uniqueEmail(), name: marks(3_000) },
    });
    expect(tooLong.status).toBe(400);
    expect((tooLong.body as ProblemBody).errors?.map((error) => error.field)).toEqual(['body.name']);
    expect((tooLong.body as ProblemBody).errors?.[0]?.message).toMatch(/100/);
    const notAName = await api.request('POST', '/users', { body: { email: uniqueEmail(), name: marks(90) } });
    expect(notAName.status).toBe(400);
    expect((notAName.body as ProblemBody).errors?.[0]?.message).toMatch(/Must be a name/);
  });

  it('rejects a second registration of the same email, in any case, with 409', async () => {
    const email = uniqueEmail();
    const first = await api.request('POST', '/users', { body: { email, name: 'First' } });
    expect(first.status).toBe(201);
    const second = await api.request('POST', '/users', {
      body: { email: email.toUpperCase(), name: 'Second' },
    });
    expect(second.status).toBe(409);
    expect(second.headers.get('content-type')).toBe('application/problem+json');
    expect((second.body as ProblemBody).code).toBe('CONFLICT');

    const original = await api.request('GET', `/users/${(first.body as { id: string }).id}`);
    expect(original.body).toMatchObject({ name: 'First' });
  });

  it('stores an email at an internationalised domain in its ASCII form, one mailbox with that spelling', async () => {
    const local = `bob-${randomUUID()}`;
    const created = await api.request('POST', '/users', {
      body: { email: `${local}@Bücher.de`, name: 'Bob' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ email: `${local}@xn--bcher-kva.de` });
    const again = await api.request('POST', '/users', {
      body: { email: `${local}@XN--BCHER-KVA.DE`, name: 'Bob' },
    });
    expect(again.status).toBe(409);
  });

  it('stores an email at an internationalised top-level domain in its ASCII form', async () => {
    const local = `ivan-${randomUUID()}`;
    const created = await api.request('POST', '/users', {
      body: { email: `${local}@пример.рф`, name: 'Ivan' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ email: `${local}@xn--e1afmkfd.xn--p1ai` });
  });

  it('refuses an email longer than mail can carry with a 400 naming the limit', async () => {
    const email = `${randomUUID()}-${'a'.repeat(28)}@example.com`;
    const response = await api.request('POST', '/users', { body: { email, name: 'Bob' } });
    expect(response.status).toBe(400);
    expect((response.body as ProblemBody).errors).toEqual([
      { field: 'body.email', message: 'Must have at most 64 characters before the @' },
    ]);
  });

  it.each([
    ['a domain with no ASCII form', `bob-${randomUUID()}@bü cher.de`],
    ['a non-ASCII local part', `josé-${randomUUID()}@bücher.de`],
  ])('refuses an email with %s', async (_what, email) => {
    const response = await api.request('POST', '/users', { body: { email, name: 'Bob' } });
    expect(response.status).toBe(400);
    expect((response.body as ProblemBody).errors?.map((error) => error.field)).toEqual(['body.email']);
  });

  it('refuses an email whose ASCII domain is broken punycode, storing nothing', async () => {
    const refused = ['xn--.com', 'xn--zz.com'].map((domain) => `a-${randomUUID()}@${domain}`);
    for (const email of refused) {
      const response = await api.request('POST', '/users', { body: { email, name: 'Bob' } });
      expect(response.status, email).toBe(400);
      expect((response.body as ProblemBody).errors).toEqual([
        { field: 'body.email', message: 'Invalid email address' },
      ]);
    }
    // Registered alongside, to show the list names users by their email.
    const control = uniqueEmail();
    expect((await api.request('POST', '/users', { body: { email: control, name: 'Bob' } })).status).toBe(201);
    const listed: string[] = [];
    let cursor: string | undefined;
    do {
      const query = `limit=100${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const page = (await api.request('GET', `/admin/users?${query}`)).body as {
        items: { email: string }[];
        nextCursor?: string;
      };
      listed.push(...page.items.map((user) => user.email));
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(listed).toContain(control);
    expect(listed.filter((email) => refused.includes(email))).toEqual([]);
  });

  it.each(['x@example.invalid', 'z@test.test', 'Printer@Office.LOCAL', 'r@router.home.arpa'])(
    'refuses to register %s, whose domain can never receive mail, with a 400 on the email',
    async (reserved) => {
      const email = reserved.replace('@', `-${randomUUID()}@`);
      const response = await api.request('POST', '/users', { body: { email, name: 'Bounce' } });
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect((response.body as ProblemBody).errors).toEqual([
        { field: 'body.email', message: expect.stringMatching(/^Must be an address that can receive mail/) },
      ]);
    },
  );

  it('lets one of ten registrations of one email, sent back to back through the runtime, succeed', async () => {
    // The runtime runs one users invocation at a time, so these arrive one after another; the race itself,
    // on separate instances at once, is in test/e2e/model-races.test.ts.
    const email = uniqueEmail();
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => api.request('POST', '/users', { body: { email, name: 'Racer' } })),
    );
    const statuses = responses.map((response) => response.status).sort();
    expect(statuses).toEqual([201, ...Array(9).fill(409)]);
  });

  it('lists every missing, extra and ill-typed field in one 400', async () => {
    const response = await api.request('POST', '/users', { body: { email: 42, admin: true } });
    expect(response.status).toBe(400);
    const problem = response.body as ProblemBody;
    expect(problem.code).toBe('VALIDATION_FAILED');
    const fields = problem.errors?.map((error) => error.field) ?? [];
    expect(problem.errors).toEqual(
      expect.arrayContaining([
        { field: 'body.name', message: 'Required' },
        { field: 'body.admin', message: 'Unknown field' },
      ]),
    );
    expect(fields).toContain('body.email');
  });

  it('answers 413 to a registration body over 8 KiB, and stores nobody', async () => {
    const email = uniqueEmail();
    const response = await api.request('POST', '/users', {
      body: { email, name: 'Big', padding: 'x'.repeat(8 * 1024) },
    });
    expect(response.status).toBe(413);
    expect((response.body as ProblemBody).detail).toBe('Request body exceeds 8192 bytes');
    const retried = await api.request('POST', '/users', { body: { email, name: 'Big' } });
    expect(retried.status).toBe(201);
  });

  it('answers 400 to malformed JSON and 415 to a non-JSON content type', async () => {
    const malformed = await api.request('POST', '/users', {
      body: '{"email": "a@b.c", ',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(400);
    expect((malformed.body as ProblemBody).detail).toMatch(/not valid JSON/);

    const wrongType = await api.request('POST', '/users', {
      body: 'email=a@b.c',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(wrongType.status).toBe(415);

    const noBody = await api.request('POST', '/users', { headers: { 'content-type': 'application/json' } });
    expect(noBody.status).toBe(400);
  });

  it('answers 415 with Accept-Encoding: identity to a gzipped body, and registers nobody', async () => {
    const email = uniqueEmail();
    const text = JSON.stringify({ email, name: 'Zipped' });
    for (const body of [gzipSync(text), Buffer.from(text)]) {
      const response = await api.request('POST', '/users', {
        body,
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      });
      expect(response.status).toBe(415);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(response.headers.get('accept-encoding')).toBe('identity');
      expect((response.body as ProblemBody).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
    // The email was not claimed: the same registration sent plainly goes through.
    const plain = await api.request('POST', '/users', {
      body: text,
      headers: { 'content-type': 'application/json', 'content-encoding': 'identity' },
    });
    expect(plain.status).toBe(201);
  });

  it('answers 404 for an unknown id and 400 for an id that cannot exist', async () => {
    expect((await api.request('GET', `/users/${randomUUID()}`)).status).toBe(404);
    const invalid = await api.request('GET', `/users/${encodeURIComponent('a#b')}`);
    expect(invalid.status).toBe(400);
    expect((invalid.body as ProblemBody).errors?.[0]?.field).toBe('path.id');
  });

  it('pages through users with a cursor and rejects a forged cursor', async () => {
    const ids = new Set<string>();
    for (let index = 0; index < 3; index += 1) {
      const created = await api.request('POST', '/users', {
        body: { email: uniqueEmail(), name: 'Pager' },
      });
      ids.add((created.body as { id: string }).id);
    }
    // Other files register users in the same table meanwhile: a small first page, then large ones, so
    // the walk stays short however many there are (up to 5,000 before it would miss ours and fail).
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < 50; page += 1) {
      const limit = page === 0 ? 2 : 100;
      const query = cursor ? `?limit=${limit}&cursor=${encodeURIComponent(cursor)}` : `?limit=${limit}`;
      const response = await api.request('GET', `/admin/users${query}`);
      expect(response.status).toBe(200);
      const body = response.body as { items: { id: string }[]; nextCursor?: string };
      expect(body.items.length).toBeLessThanOrEqual(limit);
      if (page === 0) expect(body.nextCursor).toBeDefined();
      for (const item of body.items) seen.add(item.id);
      cursor = body.nextCursor;
      if (!cursor) break;
    }
    expect([...ids].every((id) => seen.has(id))).toBe(true);

    const forged = Buffer.from(JSON.stringify({ pk: 'X', sk: 'Y', other: 'Z' })).toString('base64url');
    expect((await api.request('GET', `/admin/users?cursor=${forged}`)).status).toBe(400);
    // Well-formed for gsi1 but from another list (bookings' partition): refused before DynamoDB sees it.
    const otherList = Buffer.from(
      JSON.stringify({ pk: 'BOOKING#b1', sk: 'BOOKING#b1', gsi1pk: 'BOOKING', gsi1sk: '2026-01-01#b1' }),
    ).toString('base64url');
    const refused = await api.request('GET', `/admin/users?cursor=${otherList}`);
    expect(refused.status).toBe(400);
    expect((refused.body as ProblemBody).errors?.[0]).toEqual({
      field: 'query.cursor',
      message: 'Not a cursor from this list',
    });
    for (const limit of ['1000', '0', '0x10', '1e1', '%205', '']) {
      expect((await api.request('GET', `/admin/users?limit=${limit}`)).status).toBe(400);
    }
    expect((await api.request('GET', '/admin/users?limit=007')).status).toBe(200);
    const unknown = await api.request('GET', '/admin/users?limit=5&email=a@example.com');
    expect(unknown.status).toBe(400);
    expect((unknown.body as ProblemBody).errors).toEqual([
      { field: 'query.email', message: 'Unknown field' },
    ]);
  });

  it('deletes a user, after which it is gone and its email can register again', async () => {
    const email = uniqueEmail();
    const created = await api.request('POST', '/users', { body: { email, name: 'Leaving' } });
    const { id } = created.body as { id: string };

    expect((await api.request('DELETE', `/admin/users/${id}`)).status).toBe(204);
    expect((await api.request('GET', `/users/${id}`)).status).toBe(404);
    expect((await api.request('DELETE', `/admin/users/${id}`)).status).toBe(404);
    expect((await api.request('POST', '/users', { body: { email, name: 'Back' } })).status).toBe(201);
  });
});
