import { describe, expect, it } from 'vitest';
import { functionSqsClient } from '../../functions/shared/sqs-client.js';

describe('functionSqsClient', () => {
  it('gives every producer in a function the same client per endpoint', async () => {
    const local = functionSqsClient('http://127.0.0.1:9324');
    expect(functionSqsClient('http://127.0.0.1:9324')).toBe(local);
    expect(functionSqsClient(undefined)).toBe(functionSqsClient(undefined));
    expect(functionSqsClient(undefined)).not.toBe(local);
    expect(await local.config.credentials()).toMatchObject({ accessKeyId: 'local' });
  });
});
