// Field encryption next to the AWS Encryption SDK (raw AES keyring) and the raw AES-256-GCM floor: ops/s and bytes.
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, randomFillSync } from 'node:crypto';
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from '@aws-crypto/client-node';
import { Encryptor } from '../../middleware/encryption/encryptor.js';
import { type EncryptionContext, fieldOverheadBytes } from '../../middleware/encryption/format.js';
import { generateEncryptionKey, LocalKeyProvider } from '../../middleware/encryption/local-key-provider.js';
import type { BenchSuite, Measurement } from './harness.js';

/** Total measuring time per scenario, shared by its three sides. */
const durationMs = Number(process.env.BENCH_ENCRYPTION_MS ?? 6000);
/**
 * Values each side encrypts and decrypts untimed before a scenario. From a cold start the Encryption
 * SDK's rate keeps climbing (JIT) for about its first 2,500 round trips, to nearly twice its first rate.
 */
const warmupValues = 3000;
const context = { tenantId: 'acme', userId: 'user-0001' };

type Operation = () => Promise<void> | void;

/**
 * Operations per second of each side, measured interleaved: the sides take turns in slices for
 * `durationMs` in all, so load from other processes on a shared machine hits every side alike; the
 * order rotates each round, so garbage one side leaves for the collector lands on every side alike.
 */
async function interleavedOpsPerSecond<K extends string>(
  sides: Record<K, Operation>,
  warmupOps: number,
): Promise<Record<K, number>> {
  const names = Object.keys(sides) as K[];
  const totals = new Map<K, { count: number; ms: number }>(names.map((name) => [name, { count: 0, ms: 0 }]));
  // Warm-up (JIT, caches, pools): each side runs untimed for at least 300 ms and `warmupOps` operations.
  // Time alone would warm the sides unequally: in 300 ms Bulwark makes about 100 times the SDK's operations.
  for (const name of names) {
    const started = performance.now();
    for (let done = 0; done < warmupOps || performance.now() - started < 300; done += 1) {
      await sides[name]();
    }
  }
  const sliceMs = 200;
  const rounds = Math.max(names.length, Math.round(durationMs / (sliceMs * names.length)));
  for (let round = 0; round < rounds; round += 1) {
    const order = names.map((_, index) => names[(index + round) % names.length] as K);
    for (const name of order) {
      const total = totals.get(name) as { count: number; ms: number };
      const started = performance.now();
      let elapsed = 0;
      // At least one operation per slice, so slow sides (the Encryption SDK) are measured too.
      do {
        await sides[name]();
        total.count += 1;
        elapsed = performance.now() - started;
      } while (elapsed < sliceMs);
      total.ms += elapsed;
    }
  }
  return Object.fromEntries(
    names.map((name) => {
      const total = totals.get(name) as { count: number; ms: number };
      return [name, (total.count * 1000) / total.ms];
    }),
  ) as Record<K, number>;
}

// --- Bulwark: one record, one data key (cached), one header; each field carries key ref, IV, tag.
const encryptor = new Encryptor({
  keyProvider: new LocalKeyProvider({ key: generateEncryptionKey() }),
  keyContextFields: ['tenantId'],
});

function recordOf(fields: readonly string[], value: string): Record<string, string> {
  return Object.fromEntries(fields.map((field) => [field, value]));
}

async function bulwarkRoundTrip(
  record: Record<string, string>,
  fields: readonly string[],
  recordContext: EncryptionContext = context,
): Promise<void> {
  const stored = await encryptor.encryptFields(record, fields, recordContext);
  await encryptor.decryptFields(stored, fields, recordContext);
}

/**
 * A new record id per round trip, as when every record belongs to another user: nothing of the last
 * context can be reused (only the tenant's data key, which keyContextFields binds to the tenant).
 */
let recordNumber = 0;
function nextRecordContext(): EncryptionContext {
  recordNumber += 1;
  return { tenantId: 'acme', userId: `user-${recordNumber}` };
}

async function bulwarkBytes(record: Record<string, string>, fields: readonly string[]): Promise<number> {
  const stored = await encryptor.encryptFields(record, fields, context);
  return [...fields, encryptor.headerField].reduce(
    (sum, field) => sum + (stored[field] as Uint8Array).length,
    0,
  );
}

// --- AWS Encryption SDK: one message per field (what field-level encryption with it means).
const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const keyring = new RawAesKeyringNode({
  keyName: 'bench-key',
  keyNamespace: 'bulwark-bench',
  unencryptedMasterKey: randomBytes(32),
  wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
});
const committingNoSignature = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;
const committingSigned = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;

async function esdkMessage(
  plaintext: Buffer,
  suiteId = committingNoSignature,
  encryptionContext: EncryptionContext = context,
): Promise<Buffer> {
  const { result } = await encrypt(keyring, plaintext, { encryptionContext, suiteId });
  return result;
}

async function esdkRoundTrip(
  values: readonly Buffer[],
  encryptionContext: EncryptionContext = context,
): Promise<void> {
  for (const value of values) {
    const message = await esdkMessage(value, committingNoSignature, encryptionContext);
    await decrypt(keyring, message);
  }
}

// --- The floor: raw AES-256-GCM with a key imported once, a random IV, no key storage, no AAD, and
// none of the costs Bulwark has already shed: IVs from a pool refilled 1024 at a time (as Bulwark's
// encryptor does), each value sealed into one buffer allocated before timing (IV, ciphertext, tag), so
// per value it is only the cipher calls Bulwark makes too, minus setAAD and everything else.
const floorKey = createSecretKey(randomBytes(32));
const floorIvBytes = 12;
const floorTagBytes = 16;
const floorIvPool = Buffer.allocUnsafe(floorIvBytes * 1024);
let floorIvOffset = floorIvPool.length;

/** Encrypts and decrypts each of `values` per call, into output allocated once, here. */
function floorRoundTripper(values: readonly Buffer[]): () => void {
  const output = Buffer.allocUnsafe(
    values.reduce((sum, value) => sum + floorIvBytes + value.length + floorTagBytes, 0),
  );
  let offset = 0;
  const slots = values.map((value) => {
    const sealed = output.subarray(offset, offset + floorIvBytes + value.length + floorTagBytes);
    offset += sealed.length;
    return {
      value,
      sealed,
      iv: sealed.subarray(0, floorIvBytes),
      ciphertext: sealed.subarray(floorIvBytes, sealed.length - floorTagBytes),
      tagStart: sealed.length - floorTagBytes,
      tag: sealed.subarray(sealed.length - floorTagBytes),
    };
  });
  return () => {
    for (const slot of slots) {
      if (floorIvOffset === floorIvPool.length) {
        randomFillSync(floorIvPool);
        floorIvOffset = 0;
      }
      for (let index = 0; index < floorIvBytes; index += 1) {
        slot.sealed[index] = floorIvPool[floorIvOffset + index] as number;
      }
      floorIvOffset += floorIvBytes;
      const cipher = createCipheriv('aes-256-gcm', floorKey, slot.iv);
      slot.sealed.set(cipher.update(slot.value), floorIvBytes);
      cipher.final();
      slot.sealed.set(cipher.getAuthTag(), slot.tagStart);
      const decipher = createDecipheriv('aes-256-gcm', floorKey, slot.iv);
      decipher.setAuthTag(slot.tag);
      decipher.update(slot.ciphertext);
      decipher.final();
    }
  };
}

interface Scenario {
  readonly id: string;
  readonly what: string;
  readonly unit: string;
  readonly fields: readonly string[];
  readonly valueBytes: number;
  /** A new record id in the context of every round trip (both sides), instead of one record's. */
  readonly freshContext?: boolean;
}

const scenarios: readonly Scenario[] = [
  { id: '32b', what: '32-byte field', unit: 'round trips/s', fields: ['email'], valueBytes: 32 },
  { id: '1k', what: '1 KiB field', unit: 'round trips/s', fields: ['notes'], valueBytes: 1024 },
  {
    id: 'rec10',
    what: '10-field record (32 B each)',
    unit: 'records/s',
    fields: Array.from({ length: 10 }, (_, index) => `field${index}`),
    valueBytes: 32,
  },
  {
    id: '1k-fresh',
    what: '1 KiB field, a new record id per round trip',
    unit: 'round trips/s',
    fields: ['notes'],
    valueBytes: 1024,
    freshContext: true,
  },
];

async function measureScenario(scenario: Scenario): Promise<Measurement[]> {
  const value = 'x'.repeat(scenario.valueBytes);
  const record = recordOf(scenario.fields, value);
  const buffers = scenario.fields.map(() => Buffer.from(value));
  const floorRoundTrip = floorRoundTripper(buffers);

  const { bulwark, esdk, floor } = await interleavedOpsPerSecond(
    scenario.freshContext
      ? {
          bulwark: () => bulwarkRoundTrip(record, scenario.fields, nextRecordContext()),
          esdk: () => esdkRoundTrip(buffers, nextRecordContext()),
          floor: floorRoundTrip,
        }
      : {
          bulwark: () => bulwarkRoundTrip(record, scenario.fields),
          esdk: () => esdkRoundTrip(buffers),
          floor: floorRoundTrip,
        },
    // The SDK warms per message, and a record's round trip makes one per field.
    Math.ceil(warmupValues / scenario.fields.length),
  );

  const what = `${scenario.what}, encrypt+decrypt`;
  // The targets are for one record's fields; the fresh-context row shows the same field when
  // nothing of the previous call's context can be reused (informational, no target).
  const speed: Measurement[] = [
    {
      id: `encryption.${scenario.id}.vs-esdk`,
      what: `${what} vs Encryption SDK (committing, no signature)`,
      value: bulwark,
      unit: scenario.unit,
      baseline: { name: 'Encryption SDK', value: esdk },
      ...(scenario.freshContext ? {} : { target: { ratio: 50, better: 'higher' } as const }),
    },
    {
      id: `encryption.${scenario.id}.vs-floor`,
      what: `${what} vs raw AES-256-GCM`,
      value: bulwark,
      unit: scenario.unit,
      baseline: { name: 'node:crypto GCM', value: floor },
      ...(scenario.freshContext ? {} : { target: { ratio: 0.5, better: 'higher' } as const }),
    },
  ];
  if (scenario.freshContext) return speed;

  const plainBytes = scenario.fields.length * scenario.valueBytes;
  const storedBulwark = await bulwarkBytes(record, scenario.fields);
  const storedEsdk = (await Promise.all(buffers.map((buffer) => esdkMessage(buffer)))).reduce(
    (sum, message) => sum + message.length,
    0,
  );
  const storedFloor = plainBytes + scenario.fields.length * 28;
  return [
    ...speed,
    {
      id: `encryption.${scenario.id}.bytes`,
      what: `${scenario.what}: stored bytes incl. the record header (plaintext ${plainBytes} B; floor ${storedFloor} B)`,
      value: storedBulwark,
      unit: 'bytes',
      baseline: { name: 'Encryption SDK', value: storedEsdk },
    },
  ];
}

const suite: BenchSuite = {
  name: 'encryption',
  async run() {
    const measurements: Measurement[] = [];
    for (const scenario of scenarios) measurements.push(...(await measureScenario(scenario)));

    const field = Buffer.from('x'.repeat(32));
    const esdkOverhead = (await esdkMessage(field)).length - field.length;
    const esdkSignedOverhead = (await esdkMessage(field, committingSigned)).length - field.length;
    const stored: Record<string, unknown> = await encryptor.encryptFields(
      { a: field.toString(), b: field.toString() },
      ['a', 'b'],
      context,
    );
    const perField = (stored.a as Uint8Array).length - field.length;
    const header = (stored[encryptor.headerField] as Uint8Array).length;
    if (perField !== fieldOverheadBytes)
      throw new Error(`Per-field overhead ${perField} != ${fieldOverheadBytes}`);
    measurements.push(
      {
        id: 'encryption.overhead.per-field',
        what: `bytes added per field (one ${header}-byte header per record, local key) vs the issue's limit`,
        value: perField,
        unit: 'bytes',
        baseline: { name: 'limit', value: 46 },
        target: { ratio: 1, better: 'lower' },
      },
      {
        id: 'encryption.overhead.vs-esdk',
        what: 'bytes added per field vs Encryption SDK per message (committing, no signature)',
        value: perField,
        unit: 'bytes',
        baseline: { name: 'Encryption SDK', value: esdkOverhead },
      },
      {
        id: 'encryption.overhead.vs-esdk-signed',
        what: 'bytes added per field vs Encryption SDK per message (default: committing + ECDSA P-384)',
        value: perField,
        unit: 'bytes',
        baseline: { name: 'Encryption SDK signed', value: esdkSignedOverhead },
      },
    );
    return measurements;
  },
};

export default suite;
