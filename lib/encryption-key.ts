// A symmetric customer-managed KMS key with yearly rotation: table encryption and envelope encryption.
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface BulwarkEncryptionKeyProps {
  /** What the key protects, shown in the KMS console. */
  readonly description: string;
  /**
   * What happens to the key when it leaves the stack. Destroying it schedules deletion, after which
   * everything it encrypted is unreadable, so only throwaway stages should pass DESTROY.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Days KMS waits before deleting the key once deletion is scheduled (7 to 30).
   * @default 30
   */
  readonly pendingWindowDays?: number;
}

/**
 * A customer-managed symmetric key (`SYMMETRIC_DEFAULT`) with automatic rotation, so key use is
 * auditable in CloudTrail and revocable, which AWS-owned keys are not.
 *
 * @example
 * const dataKey = new BulwarkEncryptionKey(this, 'DataKey', { description: 'Envelope encryption' });
 * dataKey.key.grant(fn, 'kms:GenerateDataKey', 'kms:Decrypt');
 */
export class BulwarkEncryptionKey extends Construct {
  /** The created key. */
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: BulwarkEncryptionKeyProps) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: props.description,
      keySpec: kms.KeySpec.SYMMETRIC_DEFAULT,
      keyUsage: kms.KeyUsage.ENCRYPT_DECRYPT,
      // Rotation keeps old key material for decryption, so existing ciphertexts stay readable.
      enableKeyRotation: true,
      pendingWindow: Duration.days(props.pendingWindowDays ?? 30),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }
}
