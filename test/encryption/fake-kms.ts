// A KMS stand-in for aws-sdk-client-mock: real AES-GCM wrapping with the key id and context bound, KMS's errors.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import {
  DecryptCommand,
  type DecryptCommandInput,
  GenerateDataKeyCommand,
  type GenerateDataKeyCommandInput,
  GenerateMacCommand,
  type GenerateMacCommandInput,
  IncorrectKeyException,
  InvalidCiphertextException,
  KMSClient,
  NotFoundException,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';

const metadata = { $metadata: {} };

function contextAad(context: Record<string, string> | undefined): Buffer {
  return Buffer.from(JSON.stringify(Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/**
 * Mocks every KMSClient: GenerateDataKey wraps a random key under a per-key-id master key (the blob
 * names the key, as KMS's does), Decrypt refuses another key id or context with KMS's exceptions.
 */
export function mockKms(keyIds: readonly string[]) {
  const masters = new Map(keyIds.map((id) => [id, randomBytes(32)]));
  const kms = mockClient(KMSClient);

  const masterOf = (keyId: string | undefined): Buffer => {
    const master = keyId === undefined ? undefined : masters.get(keyId);
    if (!master) throw new NotFoundException({ message: 'Key not found', ...metadata });
    return master;
  };

  const install = () => {
    kms.reset();
    kms.on(GenerateDataKeyCommand).callsFake(async (input: GenerateDataKeyCommandInput) => {
      const master = masterOf(input.KeyId);
      const keyId = Buffer.from(input.KeyId as string);
      const plaintext = randomBytes(32);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', master, iv);
      cipher.setAAD(contextAad(input.EncryptionContext));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      const blob = Buffer.concat([Buffer.from([keyId.length]), keyId, iv, body, cipher.getAuthTag()]);
      return {
        Plaintext: new Uint8Array(plaintext),
        CiphertextBlob: new Uint8Array(blob),
        KeyId: input.KeyId,
      };
    });
    kms.on(DecryptCommand).callsFake(async (input: DecryptCommandInput) => {
      const blob = Buffer.from(input.CiphertextBlob as Uint8Array);
      const idLength = blob[0] ?? 0;
      const blobKeyId = blob.subarray(1, 1 + idLength).toString();
      if (blobKeyId !== input.KeyId)
        throw new IncorrectKeyException({ message: 'Incorrect key', ...metadata });
      const master = masterOf(blobKeyId);
      const rest = blob.subarray(1 + idLength);
      try {
        const decipher = createDecipheriv('aes-256-gcm', master, rest.subarray(0, 12));
        decipher.setAAD(contextAad(input.EncryptionContext));
        decipher.setAuthTag(rest.subarray(rest.length - 16));
        const plaintext = Buffer.concat([
          decipher.update(rest.subarray(12, rest.length - 16)),
          decipher.final(),
        ]);
        return { Plaintext: new Uint8Array(plaintext), KeyId: input.KeyId };
      } catch {
        throw new InvalidCiphertextException({ message: 'Invalid ciphertext', ...metadata });
      }
    });
    kms.on(GenerateMacCommand).callsFake(async (input: GenerateMacCommandInput) => {
      const mac = createHmac('sha256', masterOf(input.KeyId))
        .update(input.Message as Uint8Array)
        .digest();
      return { Mac: new Uint8Array(mac), KeyId: input.KeyId, MacAlgorithm: input.MacAlgorithm };
    });
  };
  install();
  return { kms, reset: install };
}
