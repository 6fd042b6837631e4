import { describe, expect, it } from 'vitest';
import { functionSqsClient, sendMessageBatch } from '../../functions/shared/sqs-client.js';
import { silentServer } from '../helpers/silent-server.js';

describe('functionSqsClient', () => {
  it('gives every producer in a function the same client per endpoint', async () => {
    const local = functionSqsClient('http://127.0.0.1:9324');
    expect(functionSqsClient('http://127.0.0.1:9324')).toBe(local);
    expect(functionSqsClient(undefined)).toBe(functionSqsClient(undefined));
    expect(functionSqsClient(undefined)).not.toBe(local);
    expect(await local.config.credentials()).toMatchObject({ accessKeyId: 'local' });
  });

  it('gives up on a queue that never answers, so a send after a commit cannot outlast the function', async () => {
    const stalled = await silentServer();
    const sqs = functionSqsClient(stalled.endpoint);
    const sent = sendMessageBatch(sqs, `${stalled.endpoint}/000000000000/stalled`, [{ hello: 1 }], undefined);
    // Without a request timeout that throws, this send would wait for the socket's 15 minutes.
    await expect(sent).rejects.toMatchObject({ name: 'TimeoutError' });
    sqs.destroy();
    await stalled.close();
  });
});
