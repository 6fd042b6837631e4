// What anyone can make an unconfigured deployment send: the users function's default SMS policy, through the local runtime.
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultSmsPerHour, defaultSmsPerRegionPerHour } from '../../functions/shared/environment.js';
import { drained } from '../email-worker/helpers.js';
import { useLocalRuntime } from '../helpers/runtime.js';

// A toolkit table of its own and no SMS settings: the functions' defaults, as `npm start` and the stack have them.
const api = useLocalRuntime({ ownToolkitTable: true });

/** Registers one number from its own client address, as a pumping script behind many proxies would. */
async function register(phone: string): Promise<number> {
  const response = await api.request('POST', '/users', {
    body: { email: `pump-${randomUUID()}@example.com`, name: 'Pat', phone },
  });
  return response.status;
}

describe('the default SMS policy', () => {
  it('accepts only US numbers', async () => {
    expect(await register('+447400123456')).toBe(400);
    expect(await register('+18762101234')).toBe(400);
  });

  it("sends at most the US region's budget of SMS at once, however many numbers and addresses register", async () => {
    const perRegion = defaultSmsPerRegionPerHour(defaultSmsPerHour);
    const numbers = Array.from({ length: perRegion + 10 }, (_, index) => `+1415555${String(2000 + index)}`);
    const statuses: number[] = [];
    // Ten at a time, each from its own address: the register limit is per address.
    for (let start = 0; start < numbers.length; start += 10) {
      statuses.push(...(await Promise.all(numbers.slice(start, start + 10).map(register))));
    }
    expect(statuses.every((status) => status === 201)).toBe(true);
    await drained(api.runtime());
    const sms = readdirSync(api.runtime().smsOutboxDir).filter((file) => file.endsWith('.sms.txt'));
    expect(sms).toHaveLength(perRegion);
  });
});
