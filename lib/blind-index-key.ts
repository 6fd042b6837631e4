// An HMAC_256 KMS key from which the users function derives its blind-index keys (GenerateMac).
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface BulwarkBlindIndexKeyProps {
  /**
   * What the key is for, shown in the KMS console.
   * @default 'Bulwark blind-index key derivation (HMAC_256)'
   */
  readonly description?: string;
  /**
   * What happens to the key when it leaves the stack. Destroying it makes every stored blind index
   * unmatchable, so only throwaway stages should pass DESTROY.
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
 * A `GENERATE_VERIFY_MAC` key of spec `HMAC_256`. KMS cannot rotate HMAC keys automatically, and
 * rotating it would change every blind index: lookups by an indexed field would stop matching until
 * the indexes are rebuilt, so it is deliberately long-lived.
 *
 * @example
 * const blindIndexKey = new BulwarkBlindIndexKey(this, 'BlindIndexKey');
 * blindIndexKey.key.grant(fn, 'kms:GenerateMac');
 */
export class BulwarkBlindIndexKey extends Construct {
  /** The created key. */
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: BulwarkBlindIndexKeyProps = {}) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: props.description ?? 'Bulwark blind-index key derivation (HMAC_256)',
      keySpec: kms.KeySpec.HMAC_256,
      keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
      pendingWindow: Duration.days(props.pendingWindowDays ?? 30),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }
}
