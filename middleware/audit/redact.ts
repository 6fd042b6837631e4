// Redaction for everything that is logged: deep and case-insensitive on keys, pattern-based on values, bounded in size.
import { assertNoProblems, SecretAccessError } from '../errors.js';
import { arrayOption, definedOnly, shownValue } from '../options.js';
import { truncated, truncationMark } from '../text.js';

/** What a redacted value is replaced with. */
export const redactedValue = '[REDACTED]';

/**
 * Keys whose values never reach a log line. Matching ignores case, `-`, `_` and form brackets, and also
 * covers names that end with one of these, in the plural or numbered too (`client_secret`, `id_token`,
 * `X-CSRF-Token`, `dbPassword`, `user[password]`, `passwords`, `password1`, `X-Signature`, `credentials`).
 */
export const defaultSensitiveKeys = [
  'password',
  'passwd',
  'password_hash',
  'password_confirmation',
  'token',
  'access_token',
  'refresh_token',
  'authorization',
  'cookie',
  'cookies',
  'set-cookie',
  'secret',
  'secret_access_key',
  'private_key',
  'api_key',
  'x-api-key',
  'credit_card',
  'ssn',
  'signature',
  'otp',
  'passcode',
  'credential',
  'secret_key',
  'password_confirm',
  'secret_string',
  'secret_binary',
  'pepper',
  'encryption_key',
  'index_key',
  'previous_key',
  'local_key',
] as const;

/**
 * The private members of a JSON Web Key (RFC 7518: an RSA key's `d`, `p`, `q`, `dp`, `dq`, `qi` and
 * `oth`, an EC or OKP key's `d`, a symmetric key's `k`). Names this short are ordinary fields elsewhere, so
 * they are redacted only in an object with a `kty` member, which every JWK has.
 */
const jwkPrivateMembers = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);
// The length test first: it spares every longer key (nearly all of them) the set lookup.
const isJwkPrivateMember = (object: object, key: string): boolean =>
  key.length <= 3 && jwkPrivateMembers.has(key) && Object.hasOwn(object, 'kty');

export interface RedactionOptions {
  /** Extra key names to redact, matched like {@link defaultSensitiveKeys} (e.g. `email`, `phone`). @default [] */
  readonly keys?: readonly string[] | undefined;
  /** Longest string or key kept in a log line; longer ones are cut and marked. @default 2048 */
  readonly maxStringLength?: number | undefined;
  /** Deepest nesting kept; deeper values are replaced by a marker. @default 8 */
  readonly maxDepth?: number | undefined;
  /** Most entries kept per object or array; the rest are counted in a marker. @default 100 */
  readonly maxEntries?: number | undefined;
}

export interface Redactor {
  /** A redacted, bounded, JSON-safe copy of any value (circular references, errors, buffers included). */
  redact(value: unknown): unknown;
  /** Redacts credentials inside free text (JWTs, `Bearer …`, `password=…`, `bwk_…`) and bounds its length. */
  redactString(value: string): string;
  /** Whether a key's value must be redacted. */
  isSensitiveKey(key: string): boolean;
  /**
   * A `JSON.stringify` replacer that writes a line as {@link redact} would copy each of its values; give
   * it to a Powertools Logger as `jsonReplacerFn` so that every line the logger writes is redacted.
   */
  readonly replacer: (key: string, value: unknown) => unknown;
}

const defaults = { keys: [] as readonly string[], maxStringLength: 2048, maxDepth: 8, maxEntries: 100 };

// Brackets go too, so a Rails/PHP-style form field `user[password]` ends with its last name.
const normalizeKey = (key: string) => key.toLowerCase().replace(/[-_\s[\]]/g, '');

/** `text` as a regular expression that matches it literally. */
const literalPattern = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Escapes a key name for use inside a regular expression, letting `-`/`_` match either or nothing. */
const keyPattern = (key: string) => [...normalizeKey(key)].map(literalPattern).join('[-_]?');

/**
 * A run that may be a JWT/JWS/JWE: a base64url JSON header (`eyJ…`, `{"` in base64url) and any segments
 * after it. Case-sensitive and matched apart from the other shapes, which are case-blind: a run such as
 * `EyjP…` inside a random id is no token. A random id holds `eyJ` itself about once in ten thousand, so a
 * run is a token only once {@link isToken} agrees. Each run is read once, so the scan stays linear.
 */
const mayBeToken = /eyJ[A-Za-z0-9_=-]{4,}(?:\.[A-Za-z0-9_=-]*)*/g;
/** A dot with a character after it; a lone trailing run of dots (`msg_…eyJ….`, an id ending a sentence) is none. */
const segmentAfterHeader = /\.[^.]/;
/** A token has a segment after its header (a JWS has three, a JWE five), or was cut short by truncation. */
const isToken = (run: string, offset: number, text: string): boolean =>
  segmentAfterHeader.test(run) || text.startsWith(truncationMark, offset + run.length);
/**
 * A quoted value, whole: a passphrase may hold spaces. An unclosed quote (a line cut short) runs to
 * the end of the line. Each character matches exactly one branch, so the scan stays linear.
 */
const quotedValuePattern = String.raw`"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?`;
/**
 * A quoted value of a JSON document carried inside a string (an SNS message in an SQS body, an event in
 * an error message): `\"…\"`, a quote or backslash in it escaped twice (`\\\"`). One character, or
 * one escape, per branch, so the scan stays linear. Escaped deeper, it runs to the end of the line.
 */
const escapedValuePattern = String.raw`\\+"(?:[^"\\\n]|\\\\(?:\\.|[^\\\n])|\\[^"\\\n])*(?:\\")?`;
/**
 * The `secret:` resource type of a Secrets Manager ARN
 * (`arn:aws:secretsmanager:eu-west-1:111122223333:secret:name-AbCdEf`), matched at the key `secret`: the
 * ARN's parts before it (a lookbehind) and the name right after its `:` (a secret name's characters, so
 * `secret=…`, `secret: …` and a line break after it are still credentials). The name is no credential.
 * Checked only once a key has matched, and bounded by the `:` that ends each part, so the scan stays linear.
 */
const secretsManagerArnResourceType = String.raw`(?<=\barn:[a-z-]+:secretsmanager:[a-z0-9-]+:\d{12}:secret):[\w/+=.@-]`;
/** Right before the truncation mark: where a value cut short by {@link truncated} ends. */
const cutShort = `(?=${literalPattern(truncationMark)})`;
/** After `bwk_`, as `ApiKeyStore.create` makes it: 16 hex digits of key id, `_`, 32 bytes of secret in base64url. */
const apiKeyBody = String.raw`[0-9a-f]{16}_[\w-]{43}`;
const apiKeyBodyCutShort = String.raw`(?:[0-9a-f]{16}_[\w-]{0,42}|[0-9a-f]{0,16})${cutShort}`;
/**
 * One character of a webhook signing secret's base64: `+` and `/` URL-encoded too (`%2B`, `%2F`), as in a
 * logged query string or form body. One character or one escape per branch, so each costs a bounded look.
 */
const signingSecretCharacter = String.raw`(?:[A-Za-z0-9+/]|%2[BbFf])`;
/**
 * After `whsec_`, as the webhook store makes it: 32 random bytes in padded base64; its `=` URL-encoded
 * (`%3D`), or dropped, as a copy pasted without it is still the secret.
 */
const signingSecretBody = String.raw`${signingSecretCharacter}{43}(?:=|%3[Dd])?`;
/** Cut short, possibly inside one of those escapes (`%` or `%2` before the mark). */
const signingSecretBodyCutShort = String.raw`${signingSecretCharacter}{0,43}(?:%2?)?${cutShort}`;
/**
 * The secrets Bulwark makes name their kind in a prefix, so they are found wherever they appear: an API
 * key (`bwk_<key id>_<secret>`) and a webhook signing secret (`whsec_<base64>`), each in the exact shape
 * it is made in, or the head of that shape cut short by truncation. A random base64url id (`msg_…`,
 * `ep_…`) holds `bwk_` about once in a million, with no such shape after it, so it stays whole.
 * Unanchored, so one inside URL-encoded text (`key%3Dbwk_…`) or after `_` goes too. Matched apart from
 * the other shapes, and in lower case only, as they are made: `BWK_…` is no secret. Every quantifier is
 * bounded, so each prefix costs a bounded look and the scan stays linear.
 */
const prefixedSecret = new RegExp(
  `(bwk_)(?:${apiKeyBody}|${apiKeyBodyCutShort})|(whsec_)(?:${signingSecretBody}|${signingSecretBodyCutShort})`,
  'g',
);
/** Credentials in an HTTP Authorization scheme (`Bearer <token>`, `Basic <base64>`). */
const schemePattern = '\\b(?:Bearer|Basic)\\s+[A-Za-z0-9._~+/=-]+';
/**
 * Every credential shape needs one of these: `:`/`=` (key=value), `eyJ` (JWT), a scheme name, a
 * prefixed secret's prefix.
 */
const mayHoldCredential = /[:=]|eyj|bearer|basic|bwk_|whsec_/i;
/** An environment variable's name: upper-case words joined by `_`. */
const environmentVariableName = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;
/** Longest name the environment-variable rule reads; real ones are far shorter (Lambda's whole environment is 4 KB). */
const longestVariableName = 128;
/** The last word of a secret's name in an environment variable, before the service id after it. */
const secretWord = /^(?:SECRET|KEY)$/;
/** Words, in the singular, naming where a secret is kept rather than holding it (`CONFIG_SECRET_ID`). */
const secretReferenceWords = new Set(['ARN', 'ID', 'NAME', 'PATH', 'FILE']);
/** Cache bound for key decisions: keys repeat a lot, but attacker-chosen keys must not grow memory. */
const keyCacheLimit = 2048;
/** Longest key whose decision is cached: real keys are short, and 2048 long ones would pin megabytes. */
const cachedKeyLength = 64;

function validate(options: RedactionOptions): void {
  const problems: string[] = [];
  for (const name of ['maxStringLength', 'maxDepth', 'maxEntries'] as const) {
    const value = options[name];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      problems.push(`${name} must be a positive integer`);
    }
  }
  // definedOnly keeps a null over the default key list, which would then fail to spread.
  for (const key of arrayOption(problems, 'keys', options.keys, 'of key names', { nullIsAbsent: false })) {
    if (typeof key !== 'string' || normalizeKey(key).length === 0) {
      problems.push(`keys must be non-empty strings (got ${shownValue(key)})`);
    }
  }
  assertNoProblems('redaction', problems);
}

/**
 * Builds a redactor. Build it once at cold start: the key list is compiled into one regular
 * expression and key decisions are cached.
 *
 * @example
 * const redactor = createRedactor({ keys: ['email'] });
 * redactor.redact({ Password: 'hunter2', nested: { ACCESS_TOKEN: 'x' } });
 * // → { Password: '[REDACTED]', nested: { ACCESS_TOKEN: '[REDACTED]' } }
 * const logger = new Logger({ jsonReplacerFn: redactor.replacer });
 */
export function createRedactor(options: RedactionOptions = {}): Redactor {
  validate(options);
  const settings = { ...defaults, ...definedOnly(options) };
  const listed = [...new Set([...defaultSensitiveKeys, ...settings.keys].map(normalizeKey))];
  // A key matches by its ending, so `accesstoken` adds nothing once `token` is listed; dropping such
  // names leaves every decision and match the same and makes the pattern's first compile ~40 % cheaper.
  const names = listed.filter((name) => !listed.some((other) => other !== name && name.endsWith(other)));
  const keyCache = new Map<string, boolean>();
  /** Values the walk has copied under a '' key; JSON.stringify gives each to the replacer as if a line. */
  const copiesUnderEmptyKeys = new WeakSet<object>();
  // `password=…`, `"token": "…"`, `api-key: …` inside free text: the key, its separator, then the value,
  // quoted (whole, escaped quotes too: `\"token\":\"…\"`) or bare (up to a space or delimiter). No
  // prefix is matched: `db_password=x` is caught at `password`, and an unanchored prefix would make long
  // words cost quadratic time.
  // A form field's name may close its bracket before the separator: `user[password]=…`. The `secret:` of
  // a Secrets Manager ARN is no key: the secret's name after it stays readable in every line naming it.
  const keyValue = `(?:${names.map(keyPattern).join('|')})(?!${secretsManagerArnResourceType})\\]?\\\\*["']?\\s*[:=]\\s*(?:${quotedValuePattern}|${escapedValuePattern}|(?:(?:Bearer|Basic)\\s+)?[^\\s"'&,;}]+)`;
  // A Cookie header holds many secrets separated by `;`: everything to the end of the line goes. An
  // Authorization header's credentials, of any scheme, go whole: a token (`Negotiate YII…`) or a
  // parameter list (`Digest username="…", response="…"`, `AWS4-HMAC-SHA256 Credential=…, Signature=…`).
  // A URL's password (`://user:pass@`) is matched from the fixed `://`, so no word is scanned twice; like
  // a URL parser, it runs to the last `@` before a path, query or fragment begins (`p@ss@host`), and never
  // past a character no URL holds unencoded (`"`, `<`, `>`, `\`), such as the end of a JSON string.
  const cookieHeader = '(?:set-)?cookie\\s*:[^\\r\\n]*';
  // One line only ([ \t], never \s), and at most 64 parameters, so a huge header cannot exhaust the stack.
  const authParameter = `[\\w-]+[ \\t]*=[ \\t]*(?:"(?:[^"\\\\\\n]|\\\\.)*"|[^\\s,]+)`;
  const authorizationHeader = `(?:proxy-)?authorization[ \\t]*:[ \\t]*[^\\s,;]+(?:[ \\t]+(?:${authParameter}(?:[ \\t]*,[ \\t]*${authParameter}){0,63}|[^\\s,;]+))?`;
  const urlPassword = '://[^\\s/:@]*:[^\\s/?#"<>\\\\]*@';
  const credentials = new RegExp(
    `${schemePattern}|${cookieHeader}|${authorizationHeader}|${urlPassword}|${keyValue}`,
    'gi',
  );
  const replaceCredential = (match: string): string => {
    const header = /^((?:set-)?cookie\s*:\s*|(?:proxy-)?authorization[ \t]*:[ \t]*)/i.exec(match);
    if (header) return `${header[1]}${redactedValue}`;
    const userinfo = /^(:\/\/[^\s/:@]*:)[^\s/?#"<>\\]*@$/.exec(match);
    if (userinfo) return `${userinfo[1]}${redactedValue}@`;
    const scheme = /^(Bearer|Basic)\s+/i.exec(match);
    if (scheme) return `${scheme[1]} ${redactedValue}`;
    const separator = /\\*["']?\s*[:=]\s*((?:\\*["'])?)/.exec(match);
    if (!separator) return redactedValue;
    const kept = match.slice(0, separator.index + separator[0].length);
    // A quoted value keeps its closing quote, so the text around it (JSON, say) keeps its shape.
    const quote = separator[1];
    const closed = quote !== '' && match.length > kept.length && match.endsWith(quote as string);
    return `${kept}${redactedValue}${closed ? quote : ''}`;
  };

  const endsWithSensitiveName = (key: string): boolean => {
    const normalized = normalizeKey(key);
    // Plurals and numbered copies too (`passwords`, `password1`, `apiKeys`); ends with, not contains,
    // so look-alikes such as `secretName` or `tokenCount` stay readable.
    const singular = normalized.replace(/\d+$/, '').replace(/s$/, '');
    return (
      normalized.length > 0 && names.some((name) => normalized.endsWith(name) || singular.endsWith(name))
    );
  };

  /**
   * `SERVICE_SIGNING_SECRET_BOOKINGS`: an environment variable holding one service's secret, named
   * `<purpose>_SECRET_<service id>` (or `_KEY_`, with a sensitive name such as `API_KEY` before the id).
   * A reference word after the secret's name (`SERVICE_SIGNING_SECRET_ARN_BOOKINGS`) keeps the value,
   * which then names the secret rather than holding it. The purpose is required, so names such as
   * `SECRET_REGION` stay; a word after it cannot be told from a service id (`CSRF_SECRET_LENGTH` goes).
   */
  const isServiceSecretVariable = (key: string): boolean => {
    // Each candidate word re-reads the name before it: bounded, since a client's JSON can hold any key.
    if (key.length > longestVariableName || !environmentVariableName.test(key)) return false;
    const words = key.split('_');
    for (let end = words.length - 1; end >= 2; end -= 1) {
      if (secretReferenceWords.has((words[end] as string).replace(/S$/, ''))) return false;
      if (secretWord.test(words[end - 1] as string) && endsWithSensitiveName(words.slice(0, end).join('_'))) {
        return true;
      }
    }
    return false;
  };

  const isSensitiveKey = (key: string): boolean => {
    const cached = keyCache.get(key);
    if (cached !== undefined) return cached;
    const sensitive = endsWithSensitiveName(key) || isServiceSecretVariable(key);
    if (key.length <= cachedKeyLength && keyCache.size < keyCacheLimit) keyCache.set(key, sensitive);
    return sensitive;
  };

  const cut = (value: string): string => truncated(value, settings.maxStringLength);

  const redactString = (value: string): string => {
    // Cut before matching so a huge value costs no more than a small one; the JWT pattern still
    // matches a token cut short.
    const bounded = cut(value);
    // Most strings (ids, paths, names) hold none of the shapes; one cheap test skips both patterns.
    if (bounded.length < 6 || !mayHoldCredential.test(bounded)) return bounded;
    // A prefixed secret keeps its prefix, which tells a reader what was there.
    const withoutOwnSecrets =
      bounded.includes('bwk_') || bounded.includes('whsec_')
        ? bounded.replace(
            prefixedSecret,
            (_secret: string, apiKeyPrefix?: string, signingSecretPrefix?: string) =>
              `${apiKeyPrefix ?? signingSecretPrefix}${redactedValue}`,
          )
        : bounded;
    const withoutTokens = withoutOwnSecrets.includes('eyJ')
      ? withoutOwnSecrets.replace(mayBeToken, (run: string, offset: number, text: string) =>
          isToken(run, offset, text) ? redactedValue : run,
        )
      : withoutOwnSecrets;
    return withoutTokens.replace(credentials, replaceCredential);
  };

  const redactError = (error: Error, depth: number, ancestors: object[]): Record<string, unknown> => {
    const fields: Record<string, unknown> = { name: error.name, message: redactString(error.message) };
    for (const key of ['code', 'statusCode'] as const) {
      const value = (error as Error & Record<string, unknown>)[key];
      if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
    }
    // Which secret, and why, as fields a log query can filter on; never its value, which the error lacks.
    if (error instanceof SecretAccessError) {
      fields['secretName'] = redactString(error.secretName);
      fields['versionStage'] = error.versionStage;
      fields['reason'] = error.reason;
    }
    if (typeof error.stack === 'string') fields['stack'] = redactString(error.stack);
    if (error.cause !== undefined) fields['cause'] = walk(error.cause, depth + 1, ancestors);
    return fields;
  };

  /** Copies an object's own enumerable properties, redacting sensitive keys, surviving throwing getters. */
  const walkObject = (value: object, depth: number, ancestors: object[]): Record<string, unknown> => {
    const keys = Object.keys(value);
    const kept = Math.min(keys.length, settings.maxEntries);
    const copy: Record<string, unknown> = {};
    for (let index = 0; index < kept; index += 1) {
      const key = keys[index] as string;
      let child: unknown;
      if (isSensitiveKey(key) || isJwkPrivateMember(value, key)) {
        child = redactedValue;
      } else {
        try {
          child = walk((value as Record<string, unknown>)[key], depth + 1, ancestors);
        } catch {
          child = '[Unreadable]';
        }
      }
      // JSON leaves an undefined value out of the line; leaving it out of the copy too spares the copy a
      // property and JSON.stringify a replacer call.
      if (child === undefined) continue;
      if (key === '' && typeof child === 'object' && child !== null) copiesUnderEmptyKeys.add(child);
      // A key is cut like a string once its whole name has decided whether its value is redacted.
      const name = cut(key);
      // A parsed body may hold an own `__proto__` key: define it, never assign the copy's prototype.
      if (name === '__proto__') {
        Object.defineProperty(copy, name, {
          value: child,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        copy[name] = child;
      }
    }
    if (keys.length > kept) copy['…'] = `[${keys.length - kept} more entries]`;
    return copy;
  };

  function walk(value: unknown, depth: number, ancestors: object[]): unknown {
    if (typeof value === 'string') return redactString(value);
    if (value === null || typeof value !== 'object') {
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'function' || typeof value === 'symbol') return undefined;
      if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
      return value;
    }
    if (ancestors.includes(value)) return '[Circular]';
    if (depth > settings.maxDepth) return '[Truncated: too deep]';
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
    if (ArrayBuffer.isView(value)) return `[binary ${value.byteLength} bytes]`;
    if (value instanceof ArrayBuffer) return `[binary ${value.byteLength} bytes]`;
    ancestors.push(value);
    try {
      if (value instanceof Error) return redactError(value, depth, ancestors);
      if (Array.isArray(value)) {
        const items = value.slice(0, settings.maxEntries).map((item) => walk(item, depth + 1, ancestors));
        if (value.length > settings.maxEntries)
          items.push(`[${value.length - settings.maxEntries} more items]`);
        return items;
      }
      if (value instanceof Map) {
        const entries = [...value.entries()].map(([key, child]) => [String(key), child] as const);
        return walkObject(Object.fromEntries(entries), depth, ancestors);
      }
      if (value instanceof Set) return walk([...value], depth, ancestors);
      const toJson = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJson === 'function') {
        try {
          return walk(toJson.call(value), depth, ancestors);
        } catch {
          return '[Unserializable]';
        }
      }
      return walkObject(value, depth, ancestors);
    } catch {
      // A hostile object (throwing proxy traps, getters on Map/Set) is logged as such, never thrown.
      return '[Unreadable]';
    } finally {
      ancestors.pop();
    }
  }

  // JSON.stringify calls the replacer with key '' and the whole line first, then with each key of the
  // value returned. The line is copied there, as `redact` copies a value (each of the line's values as if
  // redacted alone), and every later call passes the copy's values through: a '' key inside the copy
  // brings back a part of it, already redacted, once.
  const replacer = (key: string, value: unknown): unknown =>
    key !== '' || copiesUnderEmptyKeys.delete(value as object) ? value : walk(value, -1, []);

  return {
    redact: (value) => walk(value, 0, []),
    redactString,
    isSensitiveKey,
    replacer,
  };
}

/** The redactor with the default key list, shared by the toolkit's error logging. */
export const defaultRedactor: Redactor = createRedactor();

/**
 * Redacts a value with the default key list.
 *
 * @example
 * logger.error('Request failed', { error: redact(error) });
 */
export function redact(value: unknown): unknown {
  return defaultRedactor.redact(value);
}
