import { describe, expect, it } from 'vitest';
import { phoneRegion, phoneSchema } from '../../functions/shared/phone.js';

const refusal = 'Must be a mobile phone number of a region SMS codes are sent to (RU)';

describe('phoneSchema with regions', () => {
  const russianMobiles = phoneSchema('mobile', { regions: ['RU'] });

  it('accepts a mobile number of an allowed region', async () => {
    expect(await phoneRegion('+79161234567')).toBe('RU');
    expect((await russianMobiles.safeParseAsync('+79161234567')).success).toBe(true);
  });

  it('refuses Abkhazia’s +7 940 mobile numbers, which the number plan files under RU', async () => {
    expect(await phoneRegion('+79407123456')).toBe('RU');
    const parsed = await russianMobiles.safeParseAsync('+79407123456');
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => issue.message)).toEqual([refusal]);
  });

  it('refuses a number of another region, and of none', async () => {
    for (const number of ['+14155552671', '+881612345678']) {
      expect((await russianMobiles.safeParseAsync(number)).success).toBe(false);
    }
  });
});
